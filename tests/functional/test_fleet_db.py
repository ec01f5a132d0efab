"""The run database shared by hosts, on a real PostgreSQL: run, runs, show
and resume through the command line, and the run and instance locks as
advisory locks that hold between two "hosts" (two state_paths) and between
two threads of one process."""

import threading

import pytest

from imagepipe import exception
from imagepipe.runner import advisory
from imagepipe.runner import guards
from tests.functional.fleet_env import HostEnv
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import snapshot
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401

pytestmark = pytest.mark.slow


def test_run_crash_resume_on_postgresql(tmp_path, small, pg_url):  # noqa: F811
    env = HostEnv(tmp_path / 'a', pg_url)
    r = env.run(small[1])
    assert r.rc == 0, r
    want = snapshot(env.instances)
    env.wipe()

    r = env.run(small[1], kill_after='root-convert')
    assert killed(r), r
    run_id = first_run_id(r)
    assert env.flow_state(run_id) == 'RUNNING'
    listed = env.cli('runs', '--format', 'json')
    # the finished run before it is listed too (the last runs by default)
    assert {x['id']: x['state'] for x in listed.json()}[run_id] == (
        'INTERRUPTED')
    shown = env.cli('show', run_id, '--format', 'json').json()
    assert {s['step']: s['state'] for s in shown['steps']}['root-convert'] \
        == 'SUCCESS'
    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert r.err == ''  # nothing from alembic or taskflow on the console
    assert env.flow_state(run_id) == 'SUCCESS'
    assert_same(snapshot(env.instances), want)


def test_a_run_driven_on_one_host_is_refused_on_another(
        tmp_path, small, pg_url):  # noqa: F811
    """Two state_paths stand in for two hosts: the lock is in the
    database, not under either."""
    a = HostEnv(tmp_path / 'a', pg_url)
    b = HostEnv(tmp_path / 'b', pg_url)
    r = a.run(small[1], kill_after='root-fetch')
    assert killed(r), r
    run_id = first_run_id(r)
    where = guards.lock_dir(pg_url, a.state)
    with guards.run_lock(run_id, where):  # host a drives it
        r = b.cli('resume', run_id)
        assert r.rc == 2, r
        assert r.error_line() == (
            f'imagepipe: error: run {run_id} is being driven by another '
            'process')
        listed = b.cli('runs', '--format', 'json').json()
        assert [(x['id'], x['active']) for x in listed] == [(run_id, True)]
    assert b.flow_state(run_id) == 'RUNNING'
    r = b.cli('resume', run_id)
    assert r.rc == 0, r
    assert b.flow_state(run_id) == 'SUCCESS'


def test_advisory_locks_exclude_threads_of_one_process(tmp_path, pg_url):  # noqa: F811,E501
    where = guards.lock_dir(pg_url, str(tmp_path))
    held, refused = threading.Event(), []

    def other():
        try:
            with guards.run_lock('r1', where):
                pass
        except exception.Refused as e:
            refused.append(str(e))

    with guards.run_lock('r1', where):
        held.set()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert guards.is_active('r1', where)
    assert refused == ['run r1 is being driven by another process']
    assert not guards.is_active('r1', where)
    with guards.run_lock('r1', where):  # released with its connection
        pass


def test_hosts_starting_together_on_a_new_database(tmp_path, pg_url):  # noqa: F811,E501
    """Each command migrates the schema first: four at once on a new
    database must not race to create its tables."""
    envs = [HostEnv(tmp_path / f'h{i}', pg_url) for i in range(4)]
    procs = [env.popen('runs') for env in envs]
    results = [finish(p) for p in procs]
    for r in results:
        assert r.rc == 0, r


def _lock_holders(where, name):
    """The server processes (sessions) holding advisory lock ``name``."""
    import sqlalchemy as sa
    k = advisory.key(name) & (2 ** 64 - 1)
    engine = sa.create_engine(where.connection, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        pids = conn.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND "
            'classid = :hi AND objid = :lo AND objsubid = 1 AND granted'),
            {'hi': k >> 32, 'lo': k & 0xffffffff}).scalars().all()
    engine.dispose()
    return pids


def test_advisory_lock_sessions_are_kept_for_the_next_lock(tmp_path, pg_url):  # noqa: F811,E501
    where = guards.lock_dir(pg_url, str(tmp_path))
    with guards.run_lock('r1', where):
        first = _lock_holders(where, 'run-r1')
    assert _lock_holders(where, 'run-r1') == []  # released, session kept
    with guards.run_lock('r2', where):
        second = _lock_holders(where, 'run-r2')
    assert len(first) == 1 and first == second  # one session, reused
