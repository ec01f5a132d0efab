"""taskflow SQL persistence as imagepipe uses it.

Any SQLAlchemy URL works. A SQLite file (the default, under state_path) is
created on first use, with write-ahead logging, a busy timeout so concurrent
runs wait for each other instead of failing, and foreign keys on (taskflow's
cascades rely on them). The schema is created only when it is missing.
"""

import contextlib
import os

import sqlalchemy as sa
from sqlalchemy.engine import url as sa_url
from taskflow.persistence.backends import impl_sqlalchemy

from imagepipe import exception

BUSY_TIMEOUT_MS = 30000


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute('PRAGMA journal_mode=WAL')
    cur.execute(f'PRAGMA busy_timeout={BUSY_TIMEOUT_MS}')
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


def open_backend(connection):
    """A taskflow backend on ``connection``, its schema in place."""
    engine = _engine(connection)
    backend = impl_sqlalchemy.SQLAlchemyBackend(
        {'connection': connection}, engine=engine)
    try:
        if not sa.inspect(engine).has_table('atomdetails'):
            with contextlib.closing(backend.get_connection()) as conn:
                conn.upgrade()
    except sa.exc.SQLAlchemyError as e:
        raise exception.ConfigError(
            f'cannot open the run database {connection}: '
            f'{str(e).splitlines()[0]}') from None
    return backend
