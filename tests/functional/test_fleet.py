"""Many hosts through the command line: ``boot``, ``conductor`` and ``jobs``
with a real redis-server (the boards) and a real PostgreSQL (the shared run
database), conductors as subprocesses, and the faults they must survive."""

import os
import re
import shutil
import signal
import uuid

import pytest

from imagepipe.fleet import board as boards
from tests import httpserver
from tests.functional.fleet_env import HostEnv
from tests.functional.fleet_env import stop
from tests.functional.fleet_env import uninterrupted
from tests.functional.fleet_env import wait_log
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import part_size
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import wait_for
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow


def _host():
    return f'h-{uuid.uuid4().hex[:8]}'


@pytest.fixture
def host_env(tmp_path, pg_url, redis_server):  # noqa: F811
    made = []

    def make(name='a', **kw):
        made.append(HostEnv(tmp_path / name, pg_url, redis_server.url,
                            host=kw.pop('host', None) or _host(), **kw))
        return made[-1]
    yield make
    for env in made:
        env.stop_conductors()


def _boot(env, image, *more, instance='vm1', host=None):
    return env.popen('boot', '--host', host or env.host, '--image', image,
                     '--instance', instance, '--root-gb', '1', *more)


def _log(path):
    with open(path) as f:
        return f.read()


def test_boot_runs_on_the_hosts_conductor(host_env, small):
    env = host_env()
    r = env.run(small[1])  # the same boot, in-process, for comparison
    assert r.rc == 0, r
    want = snapshot(env.instances)
    env.wipe()

    conductor = env.conductor()
    log = os.path.join(env.root, 'conductor.log')
    wait_log(log, 'serving host')
    r = finish(_boot(env, small[1], '--wait', '--timeout', '60'))
    assert r.rc == 0, r
    run_id = first_run_id(r)
    assert env.flow_state(run_id) == 'SUCCESS'
    assert_same(snapshot(env.instances), want)
    assert env.jobs('--host', env.host) == []

    # the same instance again: refused as run refuses it, nothing posted
    again = finish(_boot(env, small[1], '--wait'))
    assert again.rc == 2, again
    assert again.error_line().startswith(
        'imagepipe: error: instance vm1 already has ')
    assert env.jobs('--host', env.host) == []

    # a host without a conductor: the job waits, jobs shows it
    r = finish(_boot(env, small[1], '--wait', '--timeout', '1',
                     instance='vm2', host='nobody-' + env.host))
    assert r.rc == 1, r
    lone = first_run_id(r)
    assert r.error_line() == (
        f'imagepipe: error: run {lone} not finished after 1s: its job on '
        f'the board of host nobody-{env.host} is unclaimed (no conductor of '
        'the host took it); it stays posted')
    listed = env.jobs('--host', 'nobody-' + env.host)
    assert [(j['run'], j['instance'], j['state'], j['owner'])
            for j in listed] == [(lone, 'vm2', 'unclaimed', None)]
    assert lone in {j['run'] for j in env.jobs()}

    assert stop(conductor) == 0
    lines = _log(log).splitlines()
    assert f'INFO: run {run_id}: SUCCESS' in lines
    assert len([x for x in lines if f'run {run_id}: started' in x]) == 1
    assert 'Traceback' not in _log(log)


def test_garbage_jobs_are_moved_out_of_the_way(host_env, small,
                                                redis_server):  # noqa: F811
    env = host_env()
    settings = boards.Settings(redis_server.url, 30, 2, env.host)
    with boards.opened(settings, env.host, 'test') as board:
        board.post('garbage', details={'nothing': 'here'})
        board.post('garbage-2', details=['not', 'a', 'dict'])
        boards.post(board, str(uuid.uuid4()))  # no such run
    conductor = env.conductor()
    r = finish(_boot(env, small[1], '--wait', '--timeout', '60'))
    assert r.rc == 0, r
    wait_for(lambda: env.jobs('--host', env.host) == [], 'an empty board')
    assert stop(conductor) == 0
    log = _log(os.path.join(env.root, 'conductor.log'))
    assert len(re.findall(r'no run id in its details', log)) == 2, log
    assert len(re.findall(r'is not in the run database: consumed', log)) == 1
    assert 'Traceback' not in log
    assert f'INFO: run {first_run_id(r)}: SUCCESS' in log


def test_eight_jobs_of_one_image_in_one_conductor(host_env, small, tmp_path):
    raw, qcow2 = small
    root = str(tmp_path / 'served')
    os.makedirs(root)
    shutil.copy(qcow2, os.path.join(root, 'small.qcow2'))
    env = host_env(max_jobs=8)
    rate = os.path.getsize(qcow2) / 1.5  # the download lasts 1.5 s
    with httpserver.Server(root, rate=rate) as server:
        url = server.url('small.qcow2')
        conductor = env.conductor()
        wait_log(os.path.join(env.root, 'conductor.log'), 'serving host')
        boots = [_boot(env, url, '--wait', '--timeout', '120',
                       instance=f'vm{i}') for i in range(8)]
        results = [finish(p) for p in boots]
        for r in results:
            assert r.rc == 0, r
        assert len(server.gets('small.qcow2')) == 1
    assert stop(conductor) == 0
    fetched = [env.result(first_run_id(r), 'root-fetch')['cached']
               for r in results]
    assert sorted(fetched) == [False] + [True] * 7
    base = env.result(first_run_id(results[0]), 'root-publish')['path']
    assert content_digest(base) == content_digest(raw)
    disks = {content_digest(os.path.join(env.instances, f'vm{i}', 'disk'))
             for i in range(8)}
    assert len(disks) == 1
    assert temporaries(env.instances) == []


def test_two_conductors_of_one_host_run_each_job_once(host_env, small):
    env = host_env(max_jobs=2)
    logs = [os.path.join(env.root, f'c{i}.log') for i in range(2)]
    conductors = [env.conductor(log=log) for log in logs]
    for log in logs:
        wait_log(log, 'serving host')
    boots = [_boot(env, small[1], '--wait', '--timeout', '120',
                   instance=f'vm{i}')
             for i in range(6)]
    results = [finish(p) for p in boots]
    for r in results:
        assert r.rc == 0, r
    for c in conductors:
        assert stop(c) == 0
    text = _log(logs[0]) + _log(logs[1])
    for r in results:
        run_id = first_run_id(r)
        assert text.count(f'run {run_id}: started') == 1, text
        assert text.count(f'run {run_id}: SUCCESS') == 1, text


def test_conductor_killed_mid_download_resumed_by_its_successor(
        host_env, served):
    directory, _ = served
    env = host_env(expiration=4)
    with httpserver.Server(directory, rate=4 * MiB) as server:
        url = server.url('big.qcow2')
        want = uninterrupted(env, url)
        mark = len(server.gets('big.qcow2'))
        size = os.path.getsize(os.path.join(directory, 'big.qcow2'))

        server.rate = 1 * MiB
        first = env.conductor(log=os.path.join(env.root, 'c1.log'))
        boot = _boot(env, url, '--wait', '--timeout', '120')
        wait_for(lambda: part_size(env) > size // 4, 'a quarter downloaded')
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        have = part_size(env)
        claimed = env.jobs('--host', env.host)
        assert [j['state'] for j in claimed] == ['claimed']

        server.rate = None
        second = env.conductor(log=os.path.join(env.root, 'c2.log'))
        r = finish(boot)
        assert r.rc == 0, r
        assert stop(second) == 0
        gets = server.gets('big.qcow2')[mark:]
    assert len(gets) == 2, gets
    assert gets[1]['range'] == f'bytes={have}-'  # only the tail again
    assert env.flow_state(first_run_id(r)) == 'SUCCESS'
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)


def test_sigterm_suspends_the_running_job_for_the_next_conductor(
        host_env, served):
    directory, _ = served
    env = host_env()
    with httpserver.Server(directory, rate=1 * MiB) as server:
        url = server.url('big.qcow2')
        log = os.path.join(env.root, 'c1.log')
        first = env.conductor(log=log)
        boot = _boot(env, url, '--wait', '--timeout', '120')
        wait_for(lambda: part_size(env) > 2 * MiB, 'the download to start')
        assert stop(first) == 0
        run_id = env.run_ids()[0]
        assert env.flow_state(run_id) == 'SUSPENDED'
        assert env.steps(run_id)['root-fetch'] == 'PENDING'
        assert [j['state'] for j in env.jobs('--host', env.host)] == [
            'unclaimed']
        assert f'INFO: run {run_id}: SUSPENDED' in _log(log)
        server.rate = None
        second = env.conductor(log=os.path.join(env.root, 'c2.log'))
        r = finish(boot)
        assert r.rc == 0, r
        assert stop(second) == 0
    assert env.flow_state(run_id) == 'SUCCESS'
    assert temporaries(env.instances) == []


@pytest.mark.parametrize('setting, value, line', [
    ('connection', 'http://127.0.0.1:1',
     '[jobboard] connection http://127.0.0.1:1 is not usable: imagepipe '
     'uses a Redis jobboard: redis://HOST[:PORT][/DB]'),
    ('connection', 'redis://127.0.0.1:1',
     '[jobboard] connection redis://127.0.0.1:1 is not usable: cannot '
     'reach it: '),
    ('expiration_time', '0',
     '[jobboard] expiration_time 0 must be at least 1 (seconds)'),
    ('max_concurrent_jobs', 'many', "invalid value 'many' for [jobboard] "
     'max_concurrent_jobs in '),
])
def test_bad_jobboard_settings(tmp_path, small, setting, value, line):
    env = Env(tmp_path / 'env')
    board = ('' if setting == 'connection'
             else 'connection = redis://127.0.0.1:1\n')
    env.configure(f'[jobboard]\n{board}{setting} = {value}\n')
    for command in (['conductor'], ['jobs'],
                    ['boot', '--host', 'h', '--image', small[1],
                     '--instance', 'vm1']):
        r = env.cli(*command)
        assert r.rc == 2, r
        assert r.error_line().startswith('imagepipe: error: ' + line), r
    assert env.run_ids() == []
