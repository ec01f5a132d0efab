"""The run and instance locks of a run database on PostgreSQL.

A fleet shares one run database between hosts, where a lock file cannot
reach; PostgreSQL's session advisory locks can. Each lock held is a
connection of its own holding ``pg_try_advisory_lock(key)``, ``key`` a
signed 64-bit hash of the lock's name: two processes (on one host or two)
and two threads of one process exclude each other alike, and a process
that dies releases its locks with its connections.

The connections are kept for the next lock (:data:`KEPT` of them), the
lock released (``pg_advisory_unlock``) before one goes back: a new one
cost ~5 ms, two per boot posted and two per job a conductor runs. One
whose unlock failed is discarded, its session (and lock) ended.
"""

import contextlib
import hashlib

from imagepipe.runner import persistence

#: idle lock connections a process keeps (more are made as needed)
KEPT = 2


def key(name):
    """The advisory lock key of ``name``: 64 bits of its sha256."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], 'big', signed=True)


class AdvisoryLocks:
    """Where the locks of a run database on PostgreSQL live: in it."""

    def __init__(self, connection):
        import sqlalchemy as sa
        self.connection = connection
        self._engine = sa.create_engine(
            connection, pool_size=KEPT, max_overflow=-1, pool_pre_ping=True,
            isolation_level='AUTOCOMMIT')
        self._sa = sa

    def __repr__(self):
        return f'the database {persistence.describe(self.connection)}'

    def _connect(self):
        try:
            return self._engine.connect()
        except self._sa.exc.SQLAlchemyError as e:
            raise persistence.unusable(self.connection, e) from None

    def _try(self, conn, name):
        query = self._sa.text('SELECT pg_try_advisory_lock(:key)')
        return conn.execute(query, {'key': key(name)}).scalar()

    def _release(self, conn, name):
        """Unlock ``name`` and give ``conn`` back; discard it if that
        failed (its session, and the lock, end with it)."""
        try:
            conn.execute(self._sa.text('SELECT pg_advisory_unlock(:key)'),
                         {'key': key(name)})
        except self._sa.exc.SQLAlchemyError:
            conn.invalidate()
        finally:
            with contextlib.suppress(self._sa.exc.SQLAlchemyError):
                conn.close()

    def try_hold(self, name):
        """A connection holding lock ``name``, or None if another holds it.

        :meth:`_release` releases the lock.
        """
        conn = self._connect()
        try:
            if self._try(conn, name):
                return conn
        except self._sa.exc.SQLAlchemyError as e:
            conn.invalidate()
            conn.close()
            raise persistence.unusable(self.connection, e) from None
        conn.close()
        return None

    @contextlib.contextmanager
    def held(self, name):
        """Yields True holding lock ``name``, False if another holds it."""
        conn = self.try_hold(name)
        try:
            yield conn is not None
        finally:
            if conn is not None:
                self._release(conn, name)

    @contextlib.contextmanager
    def waiting(self, name):
        """Hold lock ``name``, waiting for whoever holds it."""
        conn = self._connect()
        try:
            conn.execute(self._sa.text('SELECT pg_advisory_lock(:key)'),
                         {'key': key(name)})
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield
        finally:
            self._release(conn, name)

    def is_held(self, name):
        with self.held(name) as mine:
            return not mine


def for_connection(connection):
    """AdvisoryLocks for a PostgreSQL URL, None for any other database."""
    if connection.partition(':')[0].partition('+')[0] in ('postgresql',
                                                          'postgres'):
        return AdvisoryLocks(connection)
    return None
