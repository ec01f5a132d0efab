"""The run and instance locks of a run database on PostgreSQL.

A fleet shares one run database between hosts, where a lock file cannot
reach; PostgreSQL's session advisory locks can. Each lock held is a
connection of its own holding ``pg_try_advisory_lock(key)``, ``key`` a
signed 64-bit hash of the lock's name: two processes (on one host or two)
and two threads of one process exclude each other alike, and a process
that dies releases its locks with its connections. The connections are
kept for the next lock (:data:`KEPT` of them), the lock released
(``pg_advisory_unlock``) before one goes back: a new one cost ~5 ms, two per
boot posted and two per job a conductor runs. One whose unlock failed is
discarded, its session (and lock) ended.

A lock is also gone when its connection is: PostgreSQL restarted, or the
connection was cut. The process that held it would go on driving its run
(its step saves reconnect) while another could take the lock and drive the
same run. So a thread of each :class:`AdvisoryLocks` holding locks (the
keeper) looks at their connections every :data:`CHECK` seconds with a
``SELECT 1``; a lock whose connection died is taken again on a new one as
soon as the database answers (tried every :data:`RETRY` seconds meanwhile,
one warning per outage), and if another process took it in the gap, the
lock is lost: whoever holds it is told (:meth:`Hold.when_lost`), and the run
suspends (:func:`imagepipe.runner.guards.suspend_on_lost_lock`). A run
shorter than :data:`CHECK` seconds costs no query.
"""

import contextlib
import hashlib
import logging
import threading
import time

from imagepipe import exception
from imagepipe.runner import persistence

LOG = logging.getLogger('imagepipe.locks')

#: seconds between two looks at the connections of the locks held
CHECK = 2.0

#: seconds between two tries to take a lock again while the database is down
RETRY = 0.5

#: idle lock connections a process keeps (more are made as needed)
KEPT = 2

#: the locks each thread holds now (:func:`held_here`)
_here = threading.local()


def key(name):
    """The advisory lock key of ``name``: 64 bits of its sha256."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], 'big', signed=True)


def held_here():
    """The :class:`Hold` objects of the locks the calling thread holds."""
    return list(getattr(_here, 'holds', ()))


def _close(conn, discard=False):
    """Give ``conn`` back to the pool; ``discard``: end its session (and
    any lock it holds) instead."""
    import sqlalchemy as sa
    with contextlib.suppress(sa.exc.SQLAlchemyError):
        if discard:
            conn.invalidate()
        conn.close()


class Hold:
    """One lock held: its name, the connection holding it now (the keeper
    swaps it after a restart), and whether it was lost."""

    def __init__(self, name, conn, locks):
        self.name, self.conn, self._locks = name, conn, locks
        self.lost = None          # why, once another process took it
        self.released = False
        self._on_lost = None
        self.guard = threading.Lock()  # the connection: one user at a time

    def when_lost(self, callback):
        """Call ``callback(why)`` once if the lock is lost (now if it was);
        None to stop."""
        with self.guard:
            self._on_lost, lost = callback, self.lost
        if callback is not None and lost is not None:
            callback(lost)

    def lose(self, why):
        with self.guard:
            self.lost, callback = why, self._on_lost
        LOG.debug('lock %s lost: %s', self.name, why)
        if callback is not None:
            callback(why)

    def release(self):
        with self.guard:
            self.released, conn, self.conn = True, self.conn, None
        if conn is not None:
            self._locks.release(conn, self.name)


class AdvisoryLocks:
    """Where the locks of a run database on PostgreSQL live: in it."""

    def __init__(self, connection):
        import sqlalchemy as sa
        self.connection = connection
        self._engine = sa.create_engine(
            connection, pool_size=KEPT, max_overflow=-1, pool_pre_ping=True,
            isolation_level='AUTOCOMMIT')
        self._sa = sa
        self._holds = []
        self._guard = threading.Lock()  # _holds and _keeper
        self._keeper = None
        self._down = False

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

    def release(self, conn, name):
        """Unlock ``name`` and give ``conn`` back; discard it if that
        failed (its session, and the lock, end with it)."""
        try:
            conn.execute(self._sa.text('SELECT pg_advisory_unlock(:key)'),
                         {'key': key(name)})
        except self._sa.exc.SQLAlchemyError:
            _close(conn, discard=True)
        else:
            _close(conn)

    def try_hold(self, name):
        """A connection holding lock ``name``, or None if another holds it.

        :meth:`release` releases the lock.
        """
        conn = self._connect()
        try:
            if self._try(conn, name):
                return conn
        except self._sa.exc.SQLAlchemyError as e:
            _close(conn, discard=True)
            raise persistence.unusable(self.connection, e) from None
        _close(conn)
        return None

    @contextlib.contextmanager
    def held(self, name):
        """Yields True holding lock ``name`` (kept through restarts of the
        database), False if another holds it."""
        conn = self.try_hold(name)
        if conn is None:
            yield False
            return
        hold = Hold(name, conn, self)
        mine = _here.__dict__.setdefault('holds', [])
        mine.append(hold)
        self._keep(hold)
        try:
            yield True
        finally:
            with self._guard:
                self._holds.remove(hold)
            mine.remove(hold)
            hold.release()

    @contextlib.contextmanager
    def waiting(self, name):
        """Hold lock ``name``, waiting for whoever holds it."""
        conn = self._connect()
        try:
            conn.execute(self._sa.text('SELECT pg_advisory_lock(:key)'),
                         {'key': key(name)})
        except BaseException:
            _close(conn, discard=True)
            raise
        try:
            yield
        finally:
            self.release(conn, name)

    def is_held(self, name):
        conn = self.try_hold(name)
        if conn is not None:
            self.release(conn, name)
        return conn is None

    # -- the keeper ----------------------------------------------------------

    def _keep(self, hold):
        with self._guard:
            self._holds.append(hold)
            if self._keeper is None:
                self._keeper = threading.Thread(
                    target=self._keeping, name='imagepipe-lock-keeper',
                    daemon=True)
                self._keeper.start()

    def _keeping(self):
        """The keeper's loop; it ends when no lock is held."""
        delay = CHECK
        while True:
            time.sleep(delay)
            with self._guard:
                holds = list(self._holds)
                if not holds:
                    self._keeper = None
                    return
            kept = [self._check(hold) for hold in holds]
            delay = CHECK if all(kept) else RETRY

    def _answers(self, conn):
        try:
            conn.execute(self._sa.text('SELECT 1'))
        except self._sa.exc.SQLAlchemyError:
            return False
        return True

    def _check(self, hold):
        """Make sure ``hold`` still holds its lock; False while the
        database cannot tell (down)."""
        with hold.guard:
            if hold.released or hold.lost is not None:
                return True
            if hold.conn is not None:
                if self._answers(hold.conn):
                    return True
                _close(hold.conn, discard=True)
                hold.conn = None
        conn = error = None
        try:  # not under hold.guard: its holder may release it meanwhile
            conn = self.try_hold(hold.name)
        except exception.DatabaseUnusable as e:
            error = e
        # outside the except block, or oslo.log adds the exception
        self._outage(error)
        if error is not None:
            return False
        with hold.guard:
            if hold.released:
                if conn is not None:
                    self.release(conn, hold.name)
                return True
            hold.conn = conn
        if conn is None:
            hold.lose(f'another process took the lock {hold.name} while '
                      f'the connection holding it was cut')
        else:
            LOG.info('lock %s taken again on a new connection', hold.name)
        return True

    def _outage(self, error):
        """One warning as the database stops answering, one line as it
        answers again."""
        was, self._down = self._down, error is not None
        if error is not None and not was:
            LOG.warning('%s: the locks held here are taken again as soon '
                        'as it answers', error)
        elif error is None and was:
            LOG.info('%s answers again', self)


def for_connection(connection):
    """AdvisoryLocks for a PostgreSQL URL, None for any other database."""
    if connection.partition(':')[0].partition('+')[0] in ('postgresql',
                                                          'postgres'):
        return AdvisoryLocks(connection)
    return None
