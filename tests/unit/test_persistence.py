"""The run database as imagepipe opens it: pragmas, and what a meta update
writes, on a real SQLite file."""

import contextlib

from taskflow.persistence import models

from imagepipe.runner import persistence
from imagepipe.runner import runs


def _backend(tmp_path):
    return persistence.open_backend(f'sqlite:///{tmp_path}/runs.sqlite')


def test_sqlite_pragmas(tmp_path):
    backend = _backend(tmp_path)
    with backend.engine.connect() as conn:
        got = {name: conn.exec_driver_sql(f'PRAGMA {name}').scalar()
               for name in ('journal_mode', 'synchronous', 'foreign_keys',
                            'busy_timeout')}
    # synchronous 1 is NORMAL: with WAL, durable against a process crash
    assert got == {'journal_mode': 'wal', 'synchronous': 1,
                   'foreign_keys': 1,
                   'busy_timeout': persistence.BUSY_TIMEOUT_MS}


def _stored_run(backend):
    book = models.LogBook('imagepipe-test')
    fd = models.FlowDetail('flow', 'run-1')
    fd.meta = {'imagepipe': {'error': None}}
    step = models.TaskDetail('step', 'step-1')
    step.state = 'PENDING'
    fd.add(step)
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
    return fd


def test_update_writes_the_run_row_not_its_steps(tmp_path):
    backend = _backend(tmp_path)
    store = runs.RunStore(backend)
    fd = _stored_run(backend)
    fd.find('step-1').state = 'SUCCESS'    # a stale copy of a step
    fd.state = 'FAILURE'
    store.update(fd, error='boom')
    stored = store.get('run-1')
    assert stored.state == 'FAILURE'
    assert stored.meta['imagepipe']['error'] == 'boom'
    assert stored.find('step-1').state == 'PENDING'


def test_listing_reads_runs_without_their_steps(tmp_path):
    backend = _backend(tmp_path)
    store = runs.RunStore(backend)
    _stored_run(backend)
    (book, fd), = store.all()
    assert (book.name, fd.uuid, len(fd)) == ('imagepipe-test', 'run-1', 0)
    _, found = store.find('run')
    assert [ad.name for ad in found] == ['step']
