"""The faults a fleet must survive, with a real redis-server and a real
PostgreSQL (restarted by the tests) and conductors as subprocesses: the
jobboard or the run database going away and coming back, a conductor
killed in the middle of a convert, and settings that name no usable run
database."""

import os
import signal
import uuid

import pytest

from imagepipe.fleet import board as boards
from tests import httpserver
from tests.functional.fleet_env import HostEnv
from tests.functional.fleet_env import stop
from tests.functional.fleet_env import uninterrupted
from tests.functional.fleet_env import wait_log
from tests.functional.runner_env import PATH
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import part_size
from tests.functional.runner_env import qemu_img_wrapper
from tests.functional.runner_env import qemu_info
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import wait_for
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def host_env(tmp_path, pg_url, redis_server):  # noqa: F811
    made = []

    def make(name='a', **kw):
        made.append(HostEnv(tmp_path / name, pg_url, redis_server.url,
                            host=f'h-{uuid.uuid4().hex[:8]}', **kw))
        return made[-1]
    yield make
    for env in made:
        env.stop_conductors()


def _boot(env, image, instance, *more):
    """``boot`` of ``image`` as ``instance``; its run id."""
    r = env.cli('boot', '--host', env.host, '--image', image, '--instance',
                instance, '--root-gb', '1', *more)
    assert r.rc == 0, r
    return first_run_id(r)


def _conductor(env, name='c1'):
    """A conductor of ``env``'s host and the log file of the host's
    conductors (where taskflow's records go too: what an operator reads)."""
    log = os.path.join(env.root, 'conductor.log')
    if not os.path.exists(log):
        env.configure(f'[imagepipe]\nlog_file = {log}')
    proc = env.conductor(log=os.path.join(env.root, f'{name}.stderr'))
    wait_log(log, 'serving host')
    return proc, log


def _log(path):
    with open(path) as f:
        return f.read()


def _disk(env, instance):
    """An instance disk as two runs of one image make it alike: its
    content and qemu-img info, the paths of its own files left out."""
    path = os.path.join(env.instances, instance, 'disk')
    info = qemu_info(path)
    for layer in info:
        layer.pop('filename')
    return content_digest(path), info


def _ran_once(text, run_ids):
    """Each run started once and succeeded once, by the conductor's log."""
    for run_id in run_ids:
        assert text.count(f'run {run_id}: started') == 1, text
        assert text.count(f'run {run_id}: SUCCESS') == 1, text


def _jobs_on_board(env):
    """The jobs of ``env``'s host, read with redis-py (the command line
    needs the run database, which may be down)."""
    settings = boards.Settings(env.board_url, 30, 1, env.host)
    with boards.opened(settings, env.host, 'test') as board:
        return [{'run': boards.run_of(j), 'state':
                 'claimed' if boards.owner(board, j) else 'unclaimed'}
                for j in board.iterjobs(ensure_fresh=True)]


def _all_done(env, run_ids):
    return wait_for(
        lambda: (all(env.flow_state(r) == 'SUCCESS' for r in run_ids)
                 and _jobs_on_board(env) == []),
        'every run done and the board empty', timeout=90)


def test_redis_restarted_while_idle_and_while_a_job_runs(
        host_env, served, redis_server):  # noqa: F811
    directory, _ = served
    env = host_env(expiration=30, max_jobs=1)
    with httpserver.Server(directory, rate=3 * MiB) as server:
        url = server.url('big.qcow2')  # a download of about 4 s
        conductor, log = _conductor(env)
        with redis_server.down():  # idle
            wait_log(log, 'is unreachable')
        running = _boot(env, url, 'vm1')
        queued = _boot(env, url, 'vm2')  # one job at a time: it waits
        wait_for(lambda: part_size(env) > MiB, 'the download to start')
        with redis_server.down():
            wait_for(lambda: _log(log).count('is unreachable') == 2,
                     'the conductor to see the second outage')
        _all_done(env, [running, queued])
        assert conductor.poll() is None
        assert stop(conductor) == 0
        server.rate = None
        r = env.run(url, 'ref')  # as an uninterrupted run makes it
        assert r.rc == 0, r
    text = _log(log)
    assert 'Traceback' not in text, text
    assert text.count('is unreachable') == 2, text
    assert text.count('is reachable again') == 2, text
    _ran_once(text, [running, queued])
    assert sorted(env.run_ids()) == sorted([running, queued, first_run_id(r)])
    for vm in ('vm1', 'vm2'):
        assert _disk(env, vm) == _disk(env, 'ref'), vm
    assert temporaries(env.instances) == []


def test_postgresql_restarted_mid_download(host_env, served,
                                          postgres):  # noqa: F811
    """PostgreSQL restarted while a download runs: the conductor's
    connections to it are made again, the run goes on and its download is
    not lost."""
    directory, _ = served
    env = host_env(expiration=30)
    with httpserver.Server(directory) as server:
        url = server.url('big.qcow2')
        want = uninterrupted(env, url)
        mark = len(server.gets('big.qcow2'))

        server.rate = 4 * MiB  # a download of about 3 s
        conductor, log = _conductor(env)
        run_id = _boot(env, url, 'vm1')
        wait_for(lambda: part_size(env) > MiB, 'the download to start')
        with postgres.down():
            assert [j['state'] for j in _jobs_on_board(env)] == ['claimed']
        _all_done(env, [run_id])
        assert conductor.poll() is None
        assert stop(conductor) == 0
        gets = server.gets('big.qcow2')[mark:]
    assert len(gets) == 1, gets  # the download was not lost
    assert env.steps(run_id)['root-fetch'] == 'SUCCESS'
    text = _log(log)
    assert text.count(f'run {run_id}: SUCCESS') == 1, text
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)


def test_conductor_killed_mid_convert_resumed_by_its_successor(
        host_env, served, tmp_path):
    directory, _ = served
    env = host_env(expiration=3)
    with httpserver.Server(directory) as server:
        url = server.url('big.qcow2')
        want = uninterrupted(env, url)
        mark = len(server.gets('big.qcow2'))

        env.path = qemu_img_wrapper(  # a convert of half a minute at least
            str(tmp_path / 'bin'),
            'convert) shift; exec "$REAL" convert -r 1M "$@";;')
        first, log = _conductor(env)
        run_id = _boot(env, url, 'vm1')
        wait_for(lambda: [f for f in all_files(env.instances)
                          if f.endswith('.converted')], 'the convert to start')
        os.killpg(first.pid, signal.SIGKILL)  # qemu-img with it
        first.wait()
        assert env.steps(run_id)['root-convert'] == 'RUNNING'
        assert env.steps(run_id)['root-fetch'] == 'SUCCESS'

        env.path = PATH
        second, log = _conductor(env, 'c2')
        _all_done(env, [run_id])
        assert stop(second) == 0
        gets = server.gets('big.qcow2')[mark:]
    assert len(gets) == 1, gets  # no download again
    text = _log(log)
    assert text.count(f'run {run_id}: started') == 2, text  # one each
    assert text.count(f'run {run_id}: SUCCESS') == 1, text
    assert 'Traceback' not in text, text
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), want)


@pytest.mark.parametrize('url, line', [
    ('postgresql+psycopg2://imagepipe@127.0.0.1:1/runs',
     '[imagepipe] connection postgresql+psycopg2://***@127.0.0.1:1/runs is '
     'not usable: (psycopg2.OperationalError) connection to server at '
     '"127.0.0.1", port 1 failed: Connection refused'),
    ('postgresql+nodriver://imagepipe@127.0.0.1:1/runs',
     "[imagepipe] connection 'postgresql+nodriver://imagepipe@127.0.0.1:1/"
     "runs' cannot be used: Can't load plugin: "
     'sqlalchemy.dialects:postgresql.nodriver'),
    ('nosuch://runs',
     "[imagepipe] connection 'nosuch://runs' cannot be used: Can't load "
     'plugin: sqlalchemy.dialects:nosuch'),
])
def test_bad_run_database_settings(tmp_path, small, redis_server,  # noqa: F811
                                   url, line):
    env = HostEnv(tmp_path / 'env', url, redis_server.url)
    for command in (['conductor'], ['jobs'],
                    ['boot', '--host', 'h', '--image', small[1],
                     '--instance', 'vm1']):
        r = env.cli(*command)
        assert r.rc == 2, r
        assert r.error_line() == 'imagepipe: error: ' + line, r
        assert 'Traceback' not in r.err, r
    assert not os.path.exists(env.instances)
