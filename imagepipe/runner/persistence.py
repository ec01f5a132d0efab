"""The run database: where taskflow keeps every run's state.

A SQLite file (the default, under state_path) goes through imagepipe's own
backend on the standard library's sqlite3 (:mod:`imagepipe.runner.sqlite`),
created on first use. It runs with write-ahead logging, a busy timeout so
concurrent runs wait for each other instead of failing, and foreign keys on
(the tables' cascades rely on them). With WAL, ``synchronous=NORMAL`` makes
a commit durable against a crash of the process (the kill -9 that resume is
for) without an fsync per commit; a power loss may forget the last steps'
states, and those steps, being idempotent, run again on resume. (An fsync
per commit cost a second per run on a host busy writing an image.)

Any other SQLAlchemy URL (MySQL, PostgreSQL) goes through taskflow's SQL
backend, which migrates its schema with alembic: both are the optional
``imagepipe[database]`` extra, imported for such databases only; the
backend is :mod:`imagepipe.runner.sql_backend`'s (on PostgreSQL a commit
does not wait for its WAL flush either: the same trade-off as SQLite's).
"""

import contextlib
import logging
import os
import re

from imagepipe import exception

#: sqlite:// (in memory), sqlite:///relative/path, sqlite:////absolute/path
_SQLITE_URL = re.compile(r'sqlite(\+pysqlite)?://(/(?P<path>[^?]*))?$')

#: user and password in a database URL
_CREDENTIALS = re.compile(r'//[^/@]*@')


def sqlite_path(connection):
    """The file a ``sqlite://`` URL names (':memory:' for none); None for
    any other database."""
    if not connection.startswith('sqlite'):
        return None
    found = _SQLITE_URL.match(connection)
    if found is None:
        raise exception.ConfigError(
            f'[imagepipe] connection {connection!r} is not a SQLite URL '
            'imagepipe reads: sqlite:///relative/path or '
            'sqlite:////absolute/path, without options')
    return found.group('path') or ':memory:'


def _open_sqlite(path, create):
    from imagepipe.runner import sqlite
    if not create:
        if path == ':memory:' or not os.path.exists(path):
            return None
        return sqlite.SQLiteBackend({'path': path})
    if path != ':memory:':
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)),
                        exist_ok=True)
        except OSError as e:
            raise exception.DatabaseUnusable(
                f'run database {path} is not usable: cannot create the '
                f'directory {os.path.dirname(os.path.abspath(path))}: '
                f'{e.strerror}') from None
    backend = sqlite.SQLiteBackend({'path': path})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def _open_sqlalchemy(connection):
    # imported for such databases only: SQLAlchemy and alembic take 0.3 s;
    # alembic tells its plugins and each migration it checks at INFO, on
    # every command
    logging.getLogger('alembic').setLevel(logging.WARNING)
    try:
        import sqlalchemy as sa

        from imagepipe.runner import sql_backend
    except ImportError as e:
        scheme = connection.partition(':')[0]
        raise exception.ConfigError(
            f'[imagepipe] connection: a {scheme} database needs SQLAlchemy '
            f"and alembic (pip install 'imagepipe[database]'): {e}") from None
    try:
        postgres = (sa.engine.make_url(connection).get_backend_name()
                    == 'postgresql')
        engine = sa.create_engine(connection, pool_pre_ping=not postgres)
    except (sa.exc.ArgumentError, ImportError) as e:
        raise exception.ConfigError(
            f'[imagepipe] connection {connection!r} cannot be used: '
            f'{e}') from None
    if postgres:
        sa.event.listen(engine, 'connect', sql_backend.commit_without_flush)
        sa.event.listen(engine, 'checkout', sql_backend.ended_by_the_server)
    backend = sql_backend.Backend({'connection': connection}, engine=engine)
    with _migrating(connection), contextlib.closing(
            backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def _migrating(connection):
    """Schema migrations one process at a time: two hosts starting on a new
    PostgreSQL database would both create its tables (and one fail)."""
    from imagepipe.runner import advisory
    locks = advisory.for_connection(connection)
    if locks is None:
        return contextlib.nullcontext()
    return locks.waiting('imagepipe-schema')


def describe(connection):
    """The run database as an error names it: a SQLite file's path, or
    the URL without its credentials."""
    path = sqlite_path(connection)
    if path is not None:
        return path
    return _CREDENTIALS.sub('//***@', connection)


def unusable(connection, error):
    """The one-line error for a run database that failed."""
    while getattr(error, 'cause', None) is not None:  # taskflow's wrapping
        error = error.cause
    lines = str(error).strip().splitlines() or [type(error).__name__]
    path = sqlite_path(connection)
    # a file is named as the run database; a server by its setting
    what = ('run database' if path is not None
            else '[imagepipe] connection')
    return exception.DatabaseUnusable(
        f'{what} {describe(connection)} is not usable: {lines[0]}'
        f'{_full(path)}')


def _full(path):
    """Why SQLite says "disk I/O error" for a full disk: it could not
    grow its -wal or -shm file."""
    if path in (None, ':memory:'):
        return ''
    directory = os.path.dirname(os.path.abspath(path))
    try:
        free = os.statvfs(directory).f_bavail
    except OSError:
        return ''
    return f' (the filesystem of {directory} is full)' if free == 0 else ''


@contextlib.contextmanager
def usable(connection):
    """A failure of the run database (a corrupt file, a full disk) under
    this block becomes one line (:class:`~imagepipe.exception.
    DatabaseUnusable`)."""
    from taskflow import exceptions
    try:
        yield
    except exceptions.StorageFailure as e:
        raise unusable(connection, e) from None


def open_backend(connection, create=True):
    """A taskflow backend on ``connection``, its schema in place.

    ``create=False`` is for the commands that only read: a SQLite file that
    does not exist is not made (None is returned: no runs yet), nor its
    directory, and an existing one is read as it is.
    """
    path = sqlite_path(connection)
    try:
        if path is not None:
            return _open_sqlite(path, create)
        return _open_sqlalchemy(connection)
    except exception.ImagepipeError:
        raise
    except Exception as e:  # taskflow's StorageFailure, the drivers' errors
        raise unusable(connection, e) from None
