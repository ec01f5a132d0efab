"""The run and instance locks on a real PostgreSQL that restarts while a
run holds them: the holder takes them again once the database is back,
and suspends its run if another process took one meanwhile."""

import os
import subprocess
import uuid

import pytest
import sqlalchemy as sa

from imagepipe.runner import advisory
from imagepipe.runner import guards
from tests import httpserver
from tests.functional.fleet_env import HostEnv
from tests.functional.fleet_env import stop
from tests.functional.fleet_env import uninterrupted
from tests.functional.fleet_env import wait_log
from tests.functional.runner_env import MiB
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import part_size
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import wait_for
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow


def _pg_lock(name):
    """(classid, objid) of advisory lock ``name`` as pg_locks shows it."""
    unsigned = advisory.key(name) & (2 ** 64 - 1)
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def _granted(url):
    """The advisory locks granted in the database of ``url``."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with engine.connect() as db:
        return set(db.execute(sa.text(
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 1 AND granted AND "
            'database = (SELECT oid FROM pg_database '
            'WHERE datname = current_database())')).all())


def _serving(env, log):
    """A conductor of ``env``'s host, logging to ``log``, once it serves."""
    env.configure(f'[imagepipe]\nlog_file = {log}')
    conductor = env.conductor(log=os.path.join(env.root, 'c1.stderr'))
    wait_log(log, 'serving host')
    return conductor


def _posted(env, url):
    """The run id of a boot of vm1 posted to ``env``'s host."""
    r = env.cli('boot', '--host', env.host, '--image', url, '--instance',
                'vm1', '--root-gb', '1')
    assert r.rc == 0, r
    return first_run_id(r)


def test_locks_taken_again_after_postgresql_restarted(
        tmp_path, served, postgres, pg_url, redis_server):  # noqa: F811
    directory, _ = served
    env = HostEnv(tmp_path / 'a', pg_url, redis_server.url,
                  host=f'h-{uuid.uuid4().hex[:8]}', expiration=30)
    log = os.path.join(env.root, 'conductor.log')
    try:
        with httpserver.Server(directory) as server:
            url = server.url('big.qcow2')
            want = uninterrupted(env, url)
            mark = len(server.gets('big.qcow2'))
            conductor = _serving(env, log)

            server.rate = MiB  # slow until the locks are checked
            run_id = _posted(env, url)
            names = [f'run-{run_id}', guards.instance_lock_name(
                os.path.join(env.instances, 'vm1'))]
            wait_for(lambda: part_size(env) > MiB, 'the download to start')
            assert {_pg_lock(n) for n in names} <= _granted(pg_url)
            with postgres.down():  # the holder sees it, and waits
                wait_log(log, 'taken again as soon as it answers')
            wait_for(lambda: {_pg_lock(n) for n in names} <= _granted(pg_url),
                     'the run and instance locks held again', timeout=60)
            locks = advisory.AdvisoryLocks(pg_url)
            for name in names:
                assert locks.try_hold(name) is None, name  # not ours
            server.rate = None
            wait_for(lambda: env.flow_state(run_id) == 'SUCCESS',
                     'the run to succeed', timeout=90)
            assert stop(conductor) == 0
            gets = server.gets('big.qcow2')[mark:]
    finally:
        env.stop_conductors()
    assert len(gets) == 1, gets
    with open(log) as f:
        text = f.read()
    assert text.count(f'run {run_id}: SUCCESS') == 1, text
    assert 'suspends' not in text and 'Traceback' not in text, text
    warned = [x for x in text.splitlines() if 'as soon as it answers' in x]
    assert len(warned) == 1, text
    assert warned[0].startswith('WARNING: [imagepipe] connection '), text
    assert warned[0].endswith(': the locks held here are taken again as '
                              'soon as it answers'), text
    assert text.count('answers again') == 1, text
    for name in names:
        assert text.count(f'lock {name} taken again') == 1, text
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)


def test_run_lock_taken_by_another_while_postgresql_restarted(
        tmp_path, served, postgres, pg_url):  # noqa: F811
    """The holder finds its run lock taken when the database answers
    again: its run suspends before its next step and stays resumable."""
    directory, _ = served
    env = HostEnv(tmp_path / 'a', pg_url)
    err = os.path.join(env.root, 'run.stderr')
    with httpserver.Server(directory) as server:
        url = server.url('big.qcow2')
        want = uninterrupted(env, url)
        mark = len(server.gets('big.qcow2'))
        server.rate = MiB  # slow until the lock is found taken
        with open(err, 'w') as f:
            proc = subprocess.Popen(
                env.argv(['run', '--image', url, '--instance', 'vm1',
                          '--root-gb', '1']),
                stdout=subprocess.DEVNULL, stderr=f, env=env.environ())
        try:
            wait_for(lambda: part_size(env) > MiB, 'the download to start')
            run_id = env.run_ids()[-1]
            database = pg_url.rpartition('/')[2]
            locks = advisory.AdvisoryLocks(postgres.socket_url(database))
            with postgres.restarted_socket_only():  # the holder is cut off
                taken = locks.try_hold(f'run-{run_id}')
                assert taken is not None
            wait_log(err, f'run {run_id} suspends')
            server.rate = None
            assert proc.wait(timeout=90) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert env.flow_state(run_id) == 'SUSPENDED'
        disk = os.path.join(env.instances, 'vm1', 'disk')
        assert not os.path.exists(disk)
        r = env.cli('resume', run_id)  # another process has it
        assert r.rc == 2, r
        assert not os.path.exists(disk)
        locks.release(taken, f'run-{run_id}')
        r = env.cli('resume', run_id)
        assert r.rc == 0, r
        gets = server.gets('big.qcow2')[mark:]
    with open(err) as f:
        lines = f.read().splitlines()
    assert [x for x in lines if 'suspends' in x] == [
        f'ERROR: run {run_id} suspends: another process took the lock '
        f'run-{run_id} while the connection holding it was cut: resume it '
        'once that process is done with it'], lines
    assert env.flow_state(run_id) == 'SUCCESS'
    assert len(gets) == 1, gets  # the download was not lost
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)


def test_conductor_run_suspends_when_its_lock_is_taken_meanwhile(
        tmp_path, served, postgres, pg_url, redis_server):  # noqa: F811
    """As above, the run driven by a conductor in a thread of its own: it
    suspends; its job waits (claimed, not spinning) while the other process
    holds the run and the conductor finishes it once that one lets go."""
    directory, _ = served
    env = HostEnv(tmp_path / 'a', pg_url, redis_server.url,
                  host=f'h-{uuid.uuid4().hex[:8]}', expiration=30)
    log = os.path.join(env.root, 'conductor.log')
    try:
        with httpserver.Server(directory) as server:
            url = server.url('big.qcow2')
            want = uninterrupted(env, url)
            mark = len(server.gets('big.qcow2'))
            conductor = _serving(env, log)
            server.rate = MiB
            run_id = _posted(env, url)
            wait_for(lambda: part_size(env) > MiB, 'the download to start')
            database = pg_url.rpartition('/')[2]
            locks = advisory.AdvisoryLocks(postgres.socket_url(database))
            with postgres.restarted_socket_only():
                taken = locks.try_hold(f'run-{run_id}')
                assert taken is not None
            wait_log(log, f'run {run_id} suspends')
            server.rate = None
            wait_for(lambda: env.flow_state(run_id) == 'SUSPENDED',
                     'the run to suspend', timeout=90)
            disk = os.path.join(env.instances, 'vm1', 'disk')
            assert not os.path.exists(disk)
            assert env.steps(run_id)['root-fetch'] == 'SUCCESS'
            # its job, back on the board, waits while the other holds it
            wait_log(log, 'is being driven by another process: the job '
                          'waits for it')
            assert env.flow_state(run_id) == 'SUSPENDED'
            locks.release(taken, f'run-{run_id}')
            wait_for(lambda: env.flow_state(run_id) == 'SUCCESS',
                     'the conductor to finish the run', timeout=90)
            wait_for(lambda: env.jobs('--host', env.host) == [],
                     'the job to be consumed')
            assert stop(conductor) == 0
            gets = server.gets('big.qcow2')[mark:]
    finally:
        env.stop_conductors()
    assert len(gets) == 1, gets
    with open(log) as f:
        text = f.read()
    assert text.count(f'run {run_id} suspends') == 1, text
    assert text.count(f'run {run_id}: SUSPENDED') == 1, text
    assert text.count('the job waits for it') == 1, text  # no spinning
    assert text.count(f'run {run_id}: started') == 2, text
    assert 'refused' not in text, text
    assert env.flow_state(run_id) == 'SUCCESS'
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)
