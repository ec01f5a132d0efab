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
``imagepipe[database]`` extra, imported for such databases only. On
PostgreSQL a commit does not wait for its WAL flush either (the same
trade-off as SQLite's, see :func:`_commit_without_flush`).
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
        from taskflow.persistence.backends import impl_sqlalchemy
    except ImportError as e:
        scheme = connection.partition(':')[0]
        raise exception.ConfigError(
            f'[imagepipe] connection: a {scheme} database needs SQLAlchemy '
            f"and alembic (pip install 'imagepipe[database]'): {e}") from None
    try:
        engine = sa.create_engine(connection, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as e:
        raise exception.ConfigError(
            f'[imagepipe] connection {connection!r} cannot be used: '
            f'{e}') from None
    if engine.dialect.name == 'postgresql':
        sa.event.listen(engine, 'connect', _commit_without_flush)
    backend = _tables_once(impl_sqlalchemy)({'connection': connection},
                                            engine=engine)
    with _migrating(connection), contextlib.closing(
            backend.get_connection()) as conn:
        conn.upgrade()
    return backend


def _commit_without_flush(dbapi_connection, _record):
    """A PostgreSQL session whose commits do not wait for the WAL flush.

    The trade-off the SQLite run database makes (``synchronous=NORMAL``):
    a crash of the database server (not of imagepipe, nor a restart) may
    forget the commits of its last moments (the WAL writer flushes within
    0.6 s), never half of one; such a run reads INTERRUPTED and the steps
    whose states were forgotten run again on resume, being idempotent. A
    warm boot through a conductor commits ~50 times, each waiting for an
    fsync otherwise.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute('SET synchronous_commit = off')
    cursor.close()
    dbapi_connection.commit()


def _tables_once(impl_sqlalchemy):
    """taskflow's SQLAlchemy backend, its table objects made once.

    taskflow builds a new MetaData and its tables for every connection the
    engine asks for (one per step save), which costs some ms each and, as
    the statements then name new tables, defeats SQLAlchemy's cache of
    compiled statements: a conductor spent more time in that than in the
    steps of a warm boot. The tables never change, so one set serves every
    connection of the backend, from every thread.
    """
    import sqlalchemy as sa
    from taskflow import exceptions as tf_exceptions
    from taskflow.persistence.backends.sqlalchemy import tables

    class Connection(impl_sqlalchemy.Connection):
        def __init__(self, backend, upgrade_lock):
            self._backend, self._upgrade_lock = backend, upgrade_lock
            self._engine = backend.engine
            self._metadata, self._tables = backend.schema
            self._converter = impl_sqlalchemy._Alchemist(self._tables)

        def update_atom_details(self, atom_detail):
            # one UPDATE, not a SELECT first: taskflow's merge of the given
            # step into its row takes every column but the name from it
            atomdetails = self._tables.atomdetails
            values = atom_detail.to_dict()
            del values['name']
            try:
                with self._engine.begin() as conn:
                    found = conn.execute(
                        sa.update(atomdetails)
                        .where(atomdetails.c.uuid == atom_detail.uuid)
                        .values(values)).rowcount
            except sa.exc.SQLAlchemyError:
                tf_exceptions.raise_with_cause(
                    tf_exceptions.StorageFailure,
                    f'Failed updating atom details with uuid '
                    f'{atom_detail.uuid!r}')
            if not found:
                raise tf_exceptions.NotFound(
                    f'No atom details found with uuid {atom_detail.uuid!r}')
            return atom_detail

        def _update_atom_details(self, conn, ad, e_ad):
            # a step's row written only when the merge changed it: a save
            # of the run (its state) passes every step, mostly unchanged
            stored = e_ad.to_dict()
            e_ad.merge(ad)
            if e_ad.to_dict() != stored:
                conn.execute(sa.update(self._tables.atomdetails)
                             .where(self._tables.atomdetails.c.uuid
                                    == e_ad.uuid)
                             .values(e_ad.to_dict()))

    class Backend(impl_sqlalchemy.SQLAlchemyBackend):
        def __init__(self, conf, engine=None):
            super().__init__(conf, engine=engine)
            metadata = sa.MetaData()
            self.schema = (metadata, tables.fetch(metadata))

        def get_connection(self):
            conn = Connection(self, upgrade_lock=self._upgrade_lock)
            if not self._validated:
                conn.validate(max_retries=self._max_retries)
                self._validated = True
            return conn

    return Backend


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
    return exception.DatabaseUnusable(
        f'run database {describe(connection)} is not usable: {lines[0]}'
        f'{_full(sqlite_path(connection))}')


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
