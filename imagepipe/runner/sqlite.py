"""A taskflow persistence backend on the standard library's sqlite3.

taskflow's own SQL backend builds and compiles SQLAlchemy statements for
every state change: about 2 ms of CPU each here, four per step, and 0.3 s of
imports (SQLAlchemy and alembic) in every process, against a few tenths of a
millisecond for the same statements through sqlite3.

It is registered as taskflow's ``sqlite3`` persistence backend, so
``taskflow.persistence.backends.fetch('sqlite3:////abs/runs.sqlite')`` (or
``sqlite3:///relative/path``, ``sqlite3://`` for memory) opens it like any
other. (``sqlite://`` stays taskflow's SQLAlchemy backend there; imagepipe's
own ``[imagepipe] connection`` maps ``sqlite://`` URLs to this one.)

The tables, columns and encodings are taskflow's SQL backend's
(:mod:`imagepipe.runner.sqlite_rows`), so a run database written by either
reads with the other. Every
call is one transaction; a read-modify-write one starts with ``BEGIN
IMMEDIATE`` so that concurrent processes queue on the busy timeout instead of
failing to upgrade a read lock.
"""

import contextlib
import sqlite3
import threading
import time
from urllib import parse

from taskflow import exceptions as exc
from taskflow.persistence import base
from taskflow.persistence import models

from imagepipe.runner import sqlite_rows as rows

BUSY_TIMEOUT_S = 30

def _path(conf):
    """``conf['path']``, else the file of ``conf['connection']``, a
    ``sqlite3://`` URL whose path works as in SQLAlchemy's sqlite URLs."""
    if conf.get('path'):
        return conf['path']
    path = parse.urlsplit(conf['connection']).path
    return path.removeprefix('/') or ':memory:'


class SQLiteBackend(base.Backend):
    """One sqlite3 connection per backend, shared by all its callers.

    ``conf['path']``: the database file, or ``':memory:'``; or, as taskflow's
    ``fetch()`` passes it, ``conf['connection']``: a ``sqlite3://`` URL.
    """

    def __init__(self, conf):
        super().__init__(conf)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(_path(conf), timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._to_wal()
        self._db.execute('PRAGMA synchronous=NORMAL')
        self._db.execute('PRAGMA foreign_keys=ON')

    def _to_wal(self):
        """WAL mode, waiting for other processes that open a new database
        at the same moment: the switch takes an exclusive lock and SQLite
        reports it busy at once instead of calling the busy handler."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute('PRAGMA journal_mode=WAL')
                return
            except sqlite3.OperationalError as e:
                if ('locked' not in str(e)
                        or time.monotonic() > deadline):
                    raise
                time.sleep(0.05)

    def get_connection(self):
        return Connection(self)

    def close(self):
        self._db.close()

    @contextlib.contextmanager
    def transaction(self, write=False, what='accessing the run database'):
        """The database inside one transaction; StorageFailure on errors."""
        with self._lock:
            try:
                self._db.execute('BEGIN IMMEDIATE' if write else 'BEGIN')
                try:
                    yield self._db
                except BaseException:
                    self._db.execute('ROLLBACK')
                    raise
                self._db.execute('COMMIT')
            except sqlite3.Error as e:
                exc.raise_with_cause(exc.StorageFailure, f'{what}: {e}')


class Connection(base.Connection):
    """taskflow's Connection API; see taskflow.persistence.base."""

    def __init__(self, backend):
        self._backend = backend

    @property
    def backend(self):
        return self._backend

    def _tx(self, write=False, what='accessing the run database'):
        return self._backend.transaction(write, what)

    def close(self):
        pass  # the backend's connection outlives its users

    def validate(self):
        with self._tx() as db:
            db.execute('SELECT 1')

    def upgrade(self):
        with self._tx(write=True, what='creating the run database') as db:
            for statement in rows.SCHEMA.split(';'):
                if statement.strip():
                    db.execute(statement)

    def clear_all(self):
        with self._tx(write=True) as db:
            db.execute('DELETE FROM logbooks')

    # -- writing ------------------------------------------------------------

    @staticmethod
    def _insert(db, table, values):
        values = rows.encode(values)
        values.setdefault('created_at', None)
        values['created_at'] = values['created_at'] or rows.now()
        names = ', '.join(values)
        marks = ', '.join(f':{name}' for name in values)
        db.execute(f'INSERT INTO {table} ({names}) VALUES ({marks})', values)

    @staticmethod
    def _update(db, table, values):
        values = rows.encode(values)
        values['updated_at'] = rows.now()
        values.pop('created_at', None)
        sets = ', '.join(f'{name} = :{name}' for name in values
                         if name != 'uuid')
        return db.execute(f'UPDATE {table} SET {sets} WHERE uuid = :uuid',
                          values).rowcount

    def _insert_atom(self, db, ad, parent_uuid):
        self._insert(db, 'atomdetails', {
            **ad.to_dict(), 'parent_uuid': parent_uuid,
            'atom_type': models.atom_detail_type(ad)})

    def _insert_flow(self, db, fd, parent_uuid):
        self._insert(db, 'flowdetails',
                     {**fd.to_dict(), 'parent_uuid': parent_uuid})
        for ad in fd:
            self._insert_atom(db, ad, fd.uuid)

    def _merge_flow(self, db, fd, e_fd):
        e_fd.merge(fd)
        self._update(db, 'flowdetails', e_fd.to_dict())
        for ad in fd:
            e_ad = e_fd.find(ad.uuid)
            if e_ad is None:
                e_fd.add(ad)
                self._insert_atom(db, ad, fd.uuid)
            else:
                e_ad.merge(ad)
                self._update(db, 'atomdetails', e_ad.to_dict())

    def update_atom_details(self, atom_detail):
        with self._tx(write=True, what='saving a step') as db:
            e_ad = self._atom_row(db, atom_detail.uuid)
            e_ad.merge(atom_detail)
            self._update(db, 'atomdetails', e_ad.to_dict())
        return e_ad

    def update_flow_details(self, flow_detail):
        with self._tx(write=True, what='saving a run') as db:
            e_fd = self._flow_row(db, flow_detail.uuid)
            self._populate_flow(db, e_fd)
            self._merge_flow(db, flow_detail, e_fd)
        return e_fd

    def update_flow_head(self, flow_detail):
        """Write a run's own row (state, meta), not its steps' rows."""
        with self._tx(write=True, what='saving a run') as db:
            found = self._update(db, 'flowdetails', {
                'uuid': flow_detail.uuid, 'state': flow_detail.state,
                'meta': flow_detail.meta})
        if not found:
            raise exc.NotFound(
                f"No flow details found with uuid '{flow_detail.uuid}'")

    def save_logbook(self, book):
        with self._tx(write=True, what='saving a logbook') as db:
            row = db.execute('SELECT * FROM logbooks WHERE uuid = ?',
                             (book.uuid,)).fetchone()
            if row is None:
                self._insert(db, 'logbooks', book.to_dict())
                for fd in book:
                    self._insert_flow(db, fd, book.uuid)
                return book
            e_lb = rows.book(row)
            self._populate_book(db, e_lb)
            e_lb.merge(book)
            self._update(db, 'logbooks', e_lb.to_dict())
            for fd in book:
                e_fd = e_lb.find(fd.uuid)
                if e_fd is None:
                    e_lb.add(fd)
                    self._insert_flow(db, fd, e_lb.uuid)
                else:
                    self._merge_flow(db, fd, e_fd)
            return e_lb

    def destroy_logbook(self, book_uuid):
        with self._tx(write=True, what='removing a logbook') as db:
            gone = db.execute('DELETE FROM logbooks WHERE uuid = ?',
                              (book_uuid,)).rowcount
        if not gone:
            raise exc.NotFound(f"No logbook found with uuid '{book_uuid}'")

    # -- reading ------------------------------------------------------------

    @staticmethod
    def _one(db, table, uuid, what):
        row = db.execute(f'SELECT * FROM {table} WHERE uuid = ?',
                         (uuid,)).fetchone()
        if row is None:
            raise exc.NotFound(f"No {what} found with uuid '{uuid}'")
        return row

    def _atom_row(self, db, uuid):
        return rows.atom(self._one(db, 'atomdetails', uuid, 'atom details'))

    def _flow_row(self, db, uuid):
        return rows.flow(self._one(db, 'flowdetails', uuid, 'flow details'))

    @staticmethod
    def _flows_of(db, book_uuid):
        return [rows.flow(row) for row in db.execute(
            'SELECT * FROM flowdetails WHERE parent_uuid = ?', (book_uuid,))]

    @staticmethod
    def _populate_flow(db, fd):
        for row in db.execute(
                'SELECT * FROM atomdetails WHERE parent_uuid = ?', (fd.uuid,)):
            fd.add(rows.atom(row))

    def _populate_book(self, db, book):
        for fd in self._flows_of(db, book.uuid):
            self._populate_flow(db, fd)
            book.add(fd)

    def get_logbook(self, book_uuid, lazy=False):
        with self._tx() as db:
            book = rows.book(self._one(db, 'logbooks', book_uuid, 'logbook'))
            if not lazy:
                self._populate_book(db, book)
        return book

    def get_logbooks(self, lazy=False):
        with self._tx() as db:
            books = [rows.book(row) for row in db.execute(
                'SELECT * FROM logbooks')]
            if not lazy:
                for book in books:
                    self._populate_book(db, book)
        yield from books

    def get_flows_for_book(self, book_uuid, lazy=False):
        with self._tx() as db:
            flows = self._flows_of(db, book_uuid)
            if not lazy:
                for fd in flows:
                    self._populate_flow(db, fd)
        yield from flows

    def get_flow_details(self, fd_uuid, lazy=False):
        with self._tx() as db:
            fd = self._flow_row(db, fd_uuid)
            if not lazy:
                self._populate_flow(db, fd)
        return fd

    def get_atom_details(self, ad_uuid):
        with self._tx() as db:
            return self._atom_row(db, ad_uuid)

    def get_atoms_for_flow(self, fd_uuid):
        with self._tx() as db:
            atoms = [rows.atom(row) for row in db.execute(
                'SELECT * FROM atomdetails WHERE parent_uuid = ?',
                (fd_uuid,))]
        yield from atoms
