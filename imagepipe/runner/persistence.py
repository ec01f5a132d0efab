"""taskflow SQL persistence as imagepipe uses it.

Any SQLAlchemy URL works. A SQLite file (the default, under state_path) is
created on first use, with write-ahead logging, a busy timeout so concurrent
runs wait for each other instead of failing, and foreign keys on (taskflow's
cascades rely on them). With WAL, ``synchronous=NORMAL`` makes a commit
durable against a crash of the process (the kill -9 that resume is for)
without an fsync per commit; a power loss may forget the last steps' states,
and those steps, being idempotent, run again on resume. (An fsync per commit
cost a second per run on a host busy writing an image.)

The schema is created only when it is missing, by one process at a time:
several runs started at once on a new SQLite file would otherwise race to
create the same tables.
"""

import contextlib
import os

from oslo_concurrency import lockutils
import sqlalchemy as sa
from sqlalchemy.engine import url as sa_url
from taskflow import exceptions as tf_exc
from taskflow.persistence.backends import impl_sqlalchemy

from imagepipe import exception

BUSY_TIMEOUT_MS = 30000


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute(f'PRAGMA busy_timeout={BUSY_TIMEOUT_MS}')
    cur.execute('PRAGMA journal_mode=WAL')
    cur.execute('PRAGMA synchronous=NORMAL')
    cur.execute('PRAGMA foreign_keys=ON')
    cur.close()


def _engine(connection):
    try:
        url = sa_url.make_url(connection)
    except sa.exc.ArgumentError:
        raise exception.ConfigError(
            f'[imagepipe] connection is not a database URL: '
            f'{connection!r}') from None
    if url.get_backend_name() != 'sqlite':
        return sa.create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ':memory:':
        try:
            os.makedirs(os.path.dirname(os.path.abspath(url.database)),
                        exist_ok=True)
        except OSError as e:
            raise exception.ConfigError(
                f'cannot create the directory of {url.database}: '
                f'{e.strerror}') from None
    engine = sa.create_engine(url)
    sa.event.listen(engine, 'connect', _sqlite_pragmas)
    return engine


def _schema_lock(engine):
    """An inter-process lock beside a SQLite file; else none needed here.

    (taskflow upgrades MySQL and PostgreSQL through alembic, under a lock of
    its own.)
    """
    database = engine.url.database
    if (engine.url.get_backend_name() != 'sqlite' or not database
            or database == ':memory:'):
        return contextlib.nullcontext()
    path = os.path.abspath(database)
    return lockutils.external_lock(f'{os.path.basename(path)}.schema',
                                   'imagepipe-', os.path.dirname(path))


class _Backend(impl_sqlalchemy.SQLAlchemyBackend):
    """taskflow's SQL backend with one Connection for all callers.

    taskflow asks for a new Connection for every storage call (each state
    change, each progress report) and each one builds all table definitions
    again: that CPU, not the database, was most of a run's persistence cost
    (perf-baseline.md section 5). A Connection holds nothing but those
    definitions (its close() does nothing), so one is shared.
    """

    _connection = None

    def get_connection(self):
        if self._connection is None:
            self._connection = super().get_connection()
        return self._connection


def open_backend(connection):
    """A taskflow backend on ``connection``, its schema in place."""
    engine = _engine(connection)
    backend = _Backend({'connection': connection}, engine=engine)
    try:
        if not sa.inspect(engine).has_table('atomdetails'):
            with _schema_lock(engine):
                if not sa.inspect(engine).has_table('atomdetails'):
                    with contextlib.closing(backend.get_connection()) as conn:
                        conn.upgrade()
    except (sa.exc.SQLAlchemyError, tf_exc.StorageFailure) as e:
        raise exception.ConfigError(
            f'cannot open the run database {connection}: '
            f'{str(e).splitlines()[0]}') from None
    return backend
