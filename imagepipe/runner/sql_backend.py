"""taskflow's SQLAlchemy persistence backend (a run database on PostgreSQL
or MySQL), with the shortcuts that keep a step save cheap.

Each shortcut leaves the rows exactly as taskflow's own code writes them
(taskflow's PersistenceTestMixin runs on it): the table objects made once,
a step saved by one UPDATE, a run saved without rewriting its unchanged
steps, its new steps inserted by one statement. Through a conductor the
run database was most of what a warm boot cost beyond its commands.

Imported for such databases only (SQLAlchemy is the ``imagepipe[database]``
extra): :func:`imagepipe.runner.persistence.open_backend` opens it.
"""

import select

import sqlalchemy as sa
from taskflow import exceptions
from taskflow.persistence import models
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence.backends.sqlalchemy import tables


def commit_without_flush(dbapi_connection, _record):
    """A PostgreSQL session whose commits do not wait for the WAL flush
    (a ``connect`` event of the engine).

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


def ended_by_the_server(dbapi_connection, _record, _proxy):
    """Discard a pooled PostgreSQL session the server ended (a ``checkout``
    event of the engine, instead of SQLAlchemy's pre-ping).

    An idle session has nothing to read: one the server ended (restarted,
    its backend terminated or killed) has the server's last message or the
    end of the stream waiting on its socket, seen by a poll with no wait.
    The pre-ping asked the server (SELECT 1) before each transaction, a
    round trip in each of a warm boot's ~20 saves. As the pre-ping's, a
    failure invalidates the pool: a restart ended every session in it.
    """
    try:
        poll = select.poll()
        poll.register(dbapi_connection.fileno(), select.POLLIN)
        ended = bool(poll.poll(0))
    except Exception as e:  # closed on this side already
        raise sa.exc.InvalidatePoolError(str(e)) from e
    if ended:
        raise sa.exc.InvalidatePoolError('the server ended the session')


class Connection(impl_sqlalchemy.Connection):
    """taskflow's connection on the backend's one set of tables.

    taskflow builds a new MetaData and its tables for every connection (one
    per step save), which costs some ms each and, as the statements then
    name new tables, defeats SQLAlchemy's cache of compiled statements. The
    tables never change, so one set serves every connection, every thread.
    """

    def __init__(self, backend, upgrade_lock):
        self._backend, self._upgrade_lock = backend, upgrade_lock
        self._engine = backend.engine
        self._metadata, self._tables = backend.schema
        self._converter = impl_sqlalchemy._Alchemist(self._tables)

    def _update_row(self, table, uuid, values, what):
        """One UPDATE of the row of ``uuid``; NotFound if there is none."""
        try:
            with self._engine.begin() as conn:
                found = conn.execute(sa.update(table)
                                     .where(table.c.uuid == uuid)
                                     .values(values)).rowcount
        except sa.exc.SQLAlchemyError:
            exceptions.raise_with_cause(
                exceptions.StorageFailure,
                f'Failed updating {what} with uuid {uuid!r}')
        if not found:
            raise exceptions.NotFound(f'No {what} found with uuid {uuid!r}')

    def update_atom_details(self, atom_detail):
        # one UPDATE, not a SELECT first: taskflow's merge of the given
        # step into its row takes every column but the name from it
        values = atom_detail.to_dict()
        del values['name']
        self._update_row(self._tables.atomdetails, atom_detail.uuid, values,
                         'atom details')
        return atom_detail

    def update_flow_head(self, flow_detail):
        """Write a run's own row (its state and meta) by one UPDATE, not
        its steps' rows: what a save of the run's state or meta changes
        (taskflow's update_flow_details reads the run and every step
        first)."""
        self._update_row(self._tables.flowdetails, flow_detail.uuid,
                         {'state': flow_detail.state,
                          'meta': flow_detail.meta}, 'flow details')

    def _update_flow_details(self, conn, fd, e_fd):
        # taskflow's, the new steps' rows made by one INSERT: a run's first
        # save by its engine adds all its steps
        e_fd.merge(fd)
        flowdetails = self._tables.flowdetails
        conn.execute(sa.update(flowdetails)
                     .where(flowdetails.c.uuid == e_fd.uuid)
                     .values(e_fd.to_dict()))
        new = []
        for ad in fd:
            e_ad = e_fd.find(ad.uuid)
            if e_ad is None:
                e_fd.add(ad)
                new.append(dict(ad.to_dict(), parent_uuid=fd.uuid,
                                atom_type=models.atom_detail_type(ad)))
            else:
                self._update_atom_details(conn, ad, e_ad)
        if new:
            conn.execute(sa.insert(self._tables.atomdetails), new)

    def _update_atom_details(self, conn, ad, e_ad):
        # a step's row written only when the merge changed it: a save of
        # the run (its state) passes every step, mostly unchanged
        stored = e_ad.to_dict()
        e_ad.merge(ad)
        if e_ad.to_dict() != stored:
            conn.execute(sa.update(self._tables.atomdetails)
                         .where(self._tables.atomdetails.c.uuid == e_ad.uuid)
                         .values(e_ad.to_dict()))


class Backend(impl_sqlalchemy.SQLAlchemyBackend):
    """taskflow's backend, its connections :class:`Connection`."""

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
