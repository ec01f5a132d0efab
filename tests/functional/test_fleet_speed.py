"""The mechanisms that keep a boot through a conductor fast, on a real
redis-server and a real PostgreSQL (no timing: what each does): a posted
job wakes the host's conductors, and the run database's connections share
one set of tables (so SQLAlchemy compiles each statement once)."""

import contextlib
import threading
import types
import unittest
import uuid

import pytest
import sqlalchemy as sa
from taskflow import exceptions as tf_exceptions
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models
from taskflow.tests.unit.persistence import base as taskflow_tests

from imagepipe.cmd import boot
from imagepipe.fleet import board as boards
from imagepipe.fleet import wakeup
from imagepipe.runner import engine as run_engine
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow

#: a period no test waits out: a wait that ends came from a wake-up
LONG = 600


def _waiting(waker):
    """``waker.wait()`` in a thread, started and subscribed."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (waker.wait(), done.set()),
                              daemon=True)
    thread.start()
    return done


@pytest.mark.parametrize('how', ['posted', 'poked'])
def test_a_post_or_a_finished_job_wakes_the_hosts_conductor(
        redis_server, how):  # noqa: F811
    host = f'h-{uuid.uuid4().hex[:8]}'
    settings = boards.Settings(redis_server.url, 30, 2, host)
    waker = wakeup.Wakeup(settings, host, period=LONG)
    other = wakeup.Wakeup(settings, 'other-' + host, period=LONG)
    try:
        assert not waker._message(0.2)  # subscribed now, nothing yet
        woken, not_woken = _waiting(waker), _waiting(other)
        if how == 'posted':
            with boards.opened(settings, host, 'test') as board:
                boards.post(board, str(uuid.uuid4()))
        else:
            waker.poke()
        assert woken.wait(60)
        assert not not_woken.is_set()  # another host's channel stays quiet
    finally:
        other.interrupt()
        waker.close()
        other.close()


def test_boot_wait_looks_again_when_the_conductor_says_a_job_ended(
        redis_server, pg_url, monkeypatch):  # noqa: F811
    monkeypatch.setattr(boot, 'POLL', LONG)  # only a wake-up ends a wait
    host = f'h-{uuid.uuid4().hex[:8]}'
    settings = boards.Settings(redis_server.url, 30, 2, host)
    runs = run_store.RunStore(persistence.open_backend(pg_url))
    fd = runs.create({'release': 'grizzly', 'settings': {
        'instances_path': '/x'}, 'request': {'image': 'http://x/i',
                                            'instance': host}},
        linear_flow.Flow('flow'))
    fd.state = 'SUCCESS'
    runs.update(fd)
    waker = wakeup.Wakeup(settings, host)
    with boards.opened(settings, host, 'test') as board:
        job = boards.post(board, fd.uuid)
        done = []
        follower = threading.Thread(target=lambda: done.append(boot._follow(
            types.SimpleNamespace(timeout=None), settings, board, runs,
            job, fd.uuid)), daemon=True)
        follower.start()
        channel = boards.channel(host).encode()
        for _ in range(3000):    # until it listens (or never does)
            if dict(waker._client.pubsub_numsub(channel)).get(channel):
                break
            follower.join(0.01)
        board.claim(job, 'conductor')
        board.consume(job, 'conductor')
        waker.poke()             # as the conductor does when a job ends
        follower.join(60)
    waker.close()
    assert done == [0]


def test_connections_share_one_set_of_tables(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    with (contextlib.closing(backend.get_connection()) as one,
          contextlib.closing(backend.get_connection()) as two):
        assert one._tables is two._tables
        book = models.LogBook('shared')
        fd = models.FlowDetail('flow', str(uuid.uuid4()))
        book.add(fd)
        one.save_logbook(book)
        assert two.get_flow_details(fd.uuid).name == 'flow'


def test_run_database_commits_do_not_wait_for_the_wal_flush(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    with backend.engine.connect() as conn:
        setting = conn.exec_driver_sql('SHOW synchronous_commit').scalar()
    assert setting == 'off'


def _row_version(backend, table, row_uuid):
    """PostgreSQL's xmin of a row: the transaction that last wrote it."""
    with backend.engine.connect() as conn:
        return conn.exec_driver_sql(
            f'SELECT xmin::text FROM {table} WHERE uuid = %s',
            (row_uuid,)).scalar()


def test_a_save_of_the_run_rewrites_only_the_steps_it_changes(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    book = models.LogBook('steps')
    fd = models.FlowDetail('flow', str(uuid.uuid4()))
    kept, changed = (models.TaskDetail(name, str(uuid.uuid4()))
                     for name in ('kept', 'changed'))
    fd.add(kept)
    fd.add(changed)
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
        before = {ad.uuid: _row_version(backend, 'atomdetails', ad.uuid)
                  for ad in fd}
        fd.state, changed.state = 'RUNNING', 'RUNNING'
        conn.update_flow_details(fd)
    assert _row_version(backend, 'atomdetails', kept.uuid) == before[kept.uuid]
    assert (_row_version(backend, 'atomdetails', changed.uuid)
            != before[changed.uuid])
    with contextlib.closing(backend.get_connection()) as conn:
        stored = conn.get_flow_details(fd.uuid)
    assert (stored.state, stored.find(changed.uuid).state) == ('RUNNING',
                                                               'RUNNING')


def test_a_step_save_is_one_statement(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    book = models.LogBook('one')
    fd = models.FlowDetail('flow', str(uuid.uuid4()))
    step = models.TaskDetail('step', str(uuid.uuid4()))
    fd.add(step)
    book.add(fd)
    statements = []

    def seen(conn, cursor, statement, *_):
        statements.append(statement.split()[0])

    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
        step.state, step.results = 'SUCCESS', {'made': 'disk'}
        sa.event.listen(backend.engine, 'before_cursor_execute', seen)
        try:
            conn.update_atom_details(step)
        finally:
            sa.event.remove(backend.engine, 'before_cursor_execute', seen)
        stored = conn.get_flow_details(fd.uuid).find(step.uuid)
    assert statements == ['UPDATE']  # no SELECT of the row first
    assert (stored.state, stored.results) == ('SUCCESS', {'made': 'disk'})
    missing = models.TaskDetail('gone', str(uuid.uuid4()))
    with (contextlib.closing(backend.get_connection()) as conn,
          pytest.raises(tf_exceptions.NotFound)):
        conn.update_atom_details(missing)


def _statements(backend, call):
    """The SQL statements (their first word) ``call()`` runs."""
    seen = []

    def record(conn, cursor, statement, *_):
        seen.append(statement.split()[0])

    sa.event.listen(backend.engine, 'before_cursor_execute', record)
    try:
        call()
    finally:
        sa.event.remove(backend.engine, 'before_cursor_execute', record)
    return seen


def test_a_runs_new_steps_are_inserted_by_one_statement(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    book = models.LogBook('new')
    fd = models.FlowDetail('flow', str(uuid.uuid4()))
    book.add(fd)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.save_logbook(book)
        for name in ('a', 'b', 'c'):
            fd.add(models.TaskDetail(name, str(uuid.uuid4())))
        ran = _statements(backend, lambda: conn.update_flow_details(fd))
        stored = conn.get_flow_details(fd.uuid)
    assert ran.count('INSERT') == 1
    assert sorted(ad.name for ad in stored) == ['a', 'b', 'c']


def test_a_save_of_a_runs_state_or_meta_is_one_statement(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    runs = run_store.RunStore(backend)
    flow = linear_flow.Flow('flow').add(_Fine('a'), _Fine('b'))
    fd = runs.create({'release': 'grizzly',
                      'settings': {'instances_path': '/nowhere'},
                      'request': {'image': 'http://x/img', 'instance': 'i'}},
                     flow)
    engine = run_engine.load(flow, fd, backend)
    engine.run()
    ran = _statements(
        backend, lambda: engine.storage.set_flow_state('SUSPENDED'))
    assert ran == ['UPDATE']  # nor a read of the run and its steps first
    ran = _statements(backend, lambda: runs.update(fd, error='x'))
    assert ran == ['UPDATE']
    stored = runs.get(fd.uuid)
    assert (stored.state, stored.meta['imagepipe']['error']) == (
        'SUSPENDED', 'x')
    assert [ad.state for ad in stored] == ['SUCCESS', 'SUCCESS']
    missing = models.FlowDetail('flow', str(uuid.uuid4()))
    with (contextlib.closing(backend.get_connection()) as conn,
          pytest.raises(tf_exceptions.NotFound)):
        conn.update_flow_head(missing)


def _pid(backend):
    with backend.engine.connect() as conn:
        return conn.exec_driver_sql('SELECT pg_backend_pid()').scalar()


def test_a_session_the_server_ended_is_replaced_without_pinging_each(
        pg_url, monkeypatch):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    runs = run_store.RunStore(backend)
    fd = runs.create({'release': 'grizzly',
                      'settings': {'instances_path': '/nowhere'},
                      'request': {'image': 'http://x/img', 'instance': 'i'}},
                     linear_flow.Flow('flow'))
    pings = []
    dialect = type(backend.engine.dialect)
    real_ping = dialect.do_ping
    monkeypatch.setattr(dialect, 'do_ping', lambda self, c: (
        pings.append(c), real_ping(self, c))[1])
    pid = _pid(backend)
    for _ in range(3):
        assert runs.get(fd.uuid).uuid == fd.uuid
    assert pings == []  # no SELECT 1 before each transaction
    assert _pid(backend) == pid  # the pooled session was reused
    other = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with other.connect() as conn:
        assert conn.exec_driver_sql(
            f'SELECT pg_terminate_backend({pid}, 10000)').scalar()
    other.dispose()
    assert runs.get(fd.uuid).uuid == fd.uuid  # no error: a new session
    assert _pid(backend) != pid


class _Fine(task.Task):
    def execute(self):
        return 'made'


def test_a_new_run_is_stored_in_one_transaction(pg_url):  # noqa: F811
    backend = persistence.open_backend(pg_url)
    runs = run_store.RunStore(backend)
    kwargs = {'release': 'grizzly',
              'settings': {'instances_path': '/nowhere'},
              'request': {'image': 'http://x/img', 'instance': 'i1'}}
    flow = linear_flow.Flow('flow')
    fd = runs.create(kwargs, flow)
    with backend.engine.connect() as conn:
        run_row, book_row = conn.exec_driver_sql(
            'SELECT f.xmin::text, b.xmin::text FROM flowdetails f '
            'JOIN logbooks b ON b.uuid = f.parent_uuid WHERE f.uuid = %s',
            (fd.uuid,)).one()
    assert run_row == book_row  # written by the same transaction
    assert runs.get(fd.uuid).meta['factory']['kwargs'] == kwargs


class TaskflowPersistenceTests(unittest.TestCase,
                               taskflow_tests.PersistenceTestMixin):
    """taskflow's PersistenceTestMixin on the PostgreSQL backend imagepipe
    opens: its shortcuts keep taskflow's semantics."""

    @pytest.fixture(autouse=True)
    def _database(self, pg_url):  # noqa: F811
        self.backend = persistence.open_backend(pg_url)

    def _get_connection(self):
        return self.backend.get_connection()

    def tearDown(self):
        with contextlib.closing(self._get_connection()) as conn:
            conn.clear_all()
        super().tearDown()
