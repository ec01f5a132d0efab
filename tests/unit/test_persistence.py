"""The run database as imagepipe opens it, on real SQLite files: pragmas,
what a meta update writes, the same tables as taskflow's SQL backend, and
taskflow's own tests of a persistence backend run against it."""

import contextlib
import shutil
import subprocess
import sys
import tempfile
import unittest

import pytest
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import backends
from taskflow.persistence import models
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.tests.unit.persistence import base as taskflow_tests
from taskflow.types import failure

from imagepipe import exception
from imagepipe.runner import persistence
from imagepipe.runner import sqlite
from imagepipe.runner import store as run_store


def _backend(tmp_path):
    return persistence.open_backend(f'sqlite:///{tmp_path}/runs.sqlite')


def test_sqlite_pragmas(tmp_path):
    backend = _backend(tmp_path)
    with backend.transaction() as db:
        got = {name: db.execute(f'PRAGMA {name}').fetchone()[0]
               for name in ('journal_mode', 'synchronous', 'foreign_keys',
                            'busy_timeout')}
    # synchronous 1 is NORMAL: with WAL, durable against a process crash
    assert got == {'journal_mode': 'wal', 'synchronous': 1,
                   'foreign_keys': 1, 'busy_timeout': 30000}


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
    store = run_store.RunStore(backend)
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
    store = run_store.RunStore(backend)
    _stored_run(backend)
    fd, = store.all()
    assert (fd.uuid, len(fd)) == ('run-1', 0)
    found = store.find('run')
    assert [ad.name for ad in found] == ['step']


def _book_with_everything():
    book = models.LogBook('imagepipe-compat')
    fd = models.FlowDetail('flow', 'run-2')
    fd.state = 'FAILURE'
    fd.meta = {'imagepipe': {'image': 'x', 'n': [1, 2]}}
    done = models.TaskDetail('done', 'atom-1')
    done.state = 'SUCCESS'
    done.results = {'path': '/b/abc', 'size': 3}
    failed = models.TaskDetail('failed', 'atom-2')
    failed.state = 'FAILURE'
    failed.failure = failure.Failure.from_exception(ValueError('bad image'))
    fd.add(done)
    fd.add(failed)
    book.add(fd)
    return book


def _contents(backend):
    with contextlib.closing(backend.get_connection()) as conn:
        return [(b.to_dict()['name'], fd.to_dict(),
                 sorted((str(ad.to_dict()), type(ad).__name__)
                        for ad in fd))
                for b in conn.get_logbooks() for fd in b]


@pytest.mark.parametrize('writer', ['taskflow', 'imagepipe'])
def test_same_database_as_taskflows_sql_backend(tmp_path, writer):
    url = f'sqlite:///{tmp_path}/runs.sqlite'
    theirs = impl_sqlalchemy.SQLAlchemyBackend({'connection': url})
    if writer == 'taskflow':     # taskflow makes the tables, writes
        with contextlib.closing(theirs.get_connection()) as conn:
            conn.upgrade()
        first, second = theirs, persistence.open_backend(url)
    else:                        # imagepipe makes the tables, writes
        first, second = persistence.open_backend(url), theirs
    with contextlib.closing(first.get_connection()) as conn:
        conn.save_logbook(_book_with_everything())
    assert _contents(second) == _contents(first)
    (_, fd, atoms), = _contents(second)
    assert fd['meta'] == {'imagepipe': {'image': 'x', 'n': [1, 2]}}
    assert 'bad image' in str(atoms)


@pytest.mark.parametrize('url, path', [
    ('sqlite:////var/lib/x/runs.sqlite', '/var/lib/x/runs.sqlite'),
    ('sqlite:///rel/runs.sqlite', 'rel/runs.sqlite'),
    ('sqlite://', ':memory:'),
    ('sqlite:///:memory:', ':memory:'),
    ('mysql+pymysql://u:p@h/db', None),
])
def test_sqlite_urls(url, path):
    assert persistence.sqlite_path(url) == path


def test_bad_sqlite_url_is_one_config_error():
    with pytest.raises(exception.ConfigError, match='not a SQLite URL'):
        persistence.open_backend('sqlite:relative.db')


def test_unwritable_database_is_one_config_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(exception.ConfigError,
                       match='cannot create the directory'):
        persistence.open_backend(f'sqlite:///{blocker}/sub/runs.sqlite')


class TaskflowPersistenceTests(unittest.TestCase,
                               taskflow_tests.PersistenceTestMixin):
    """taskflow's PersistenceTestMixin on a file opened by taskflow's
    fetch(), as any other taskflow backend."""

    def setUp(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.backend = backends.fetch(
            {'connection': f'sqlite3:///{directory}/runs.sqlite'})
        self.addCleanup(self.backend.close)
        with contextlib.closing(self.backend.get_connection()) as conn:
            conn.upgrade()

    def _get_connection(self):
        return self.backend.get_connection()


@pytest.mark.parametrize('url, path', [
    ('sqlite3:///{tmp}/abs.sqlite', '{tmp}/abs.sqlite'),
    ('sqlite3:///rel.sqlite', '{tmp}/rel.sqlite'),     # from the cwd
    ('sqlite3://', ''),
    ('sqlite3:///:memory:', ''),
])
def test_fetch_finds_the_sqlite3_backend(tmp_path, monkeypatch, url, path):
    monkeypatch.chdir(tmp_path)
    url = url.format(tmp=tmp_path)
    with contextlib.closing(backends.fetch(url)) as backend:
        assert isinstance(backend, sqlite.SQLiteBackend)
        with backend.transaction() as db:
            _, _, opened = db.execute('PRAGMA database_list').fetchone()
    assert opened == path.format(tmp=tmp_path)


def test_a_database_taskflow_made_is_a_run_database(tmp_path):
    """taskflow's backend() context (fetch, upgrade) makes the tables; the
    run written through it is read back by imagepipe's open_backend."""
    db = tmp_path / 'runs.sqlite'
    with backends.backend(f'sqlite3:///{db}') as backend:
        fd = _stored_run(backend)
    with contextlib.closing(persistence.open_backend(f'sqlite:///{db}')) as b:
        stored = run_store.RunStore(b).get(fd.uuid)
    assert stored.meta == {'imagepipe': {'error': None}}
    assert stored.find('step-1').state == 'PENDING'


class Noop(task.Task):
    def execute(self):
        pass


def test_runs_of_an_instance(tmp_path):
    store = run_store.RunStore(_backend(tmp_path))
    flow = linear_flow.Flow('noop').add(Noop('step'))
    made = {}
    for name in ('a', 'b'):
        kwargs = {'release': 'noop',
                  'settings': {'instances_path': str(tmp_path)},
                  'request': {'image': 'img', 'instance': name}}
        made[name] = store.create(kwargs, flow).uuid
    old = _stored_run(store.backend)    # a logbook naming no instance
    found = {fd.uuid for fd in store.of_instance(str(tmp_path / 'a'))}
    assert found == {made['a'], old.uuid}


SIGNAL_IN_A_WRITE = '''
import os, signal, sys
from imagepipe.runner import interrupts, persistence
backend = persistence.open_backend(sys.argv[1])

class Engine:
    def suspend(self):
        with backend.transaction(write=True) as db:
            db.execute('SELECT 1')
        print('suspended')

with interrupts.suspend_on_signals(Engine(), 'r1', out=sys.stdout) as caught:
    with backend.transaction(write=True) as db:
        os.kill(os.getpid(), signal.SIGINT)   # arrives inside the write
        db.execute('SELECT 1')
print('signals', len(caught))
'''


def test_a_signal_during_a_database_write_still_suspends(tmp_path):
    """The handler must not wait, in the thread it interrupted, for the
    database lock that very thread holds."""
    done = subprocess.run(
        [sys.executable, '-c', SIGNAL_IN_A_WRITE,
         f'sqlite:///{tmp_path}/runs.sqlite'],
        capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ['suspended', 'signals 1']
