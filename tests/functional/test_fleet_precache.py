"""``precache --host``: pre-caching through the hosts' conductors, with a
real redis-server (the boards) and a real PostgreSQL (the shared run
database), conductors as subprocesses.

The hosts here share one instances_path (one configuration, a conductor
started with ``--host`` per host), as Nova's hosts on shared storage do:
the first host pre-cached fetches the image, the next finds it there."""

import os
import shutil
import time
import uuid

import pytest
import sqlalchemy as sa

from tests import httpserver
from tests import images
from tests.functional.fleet_env import HostEnv
from tests.functional.fleet_env import stop
from tests.functional.fleet_env import wait_log
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import finish
from tests.functional.runner_env import temporaries
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow

DAY = 86400


@pytest.fixture
def fleet(tmp_path, pg_url, redis_server):  # noqa: F811
    env = HostEnv(tmp_path / 'env', pg_url, redis_server.url,
                  host=f'h-{uuid.uuid4().hex[:8]}', max_jobs=2,
                  release='gazpacho')
    yield env
    env.stop_conductors()


@pytest.fixture
def served(tmp_path, small):
    root = tmp_path / 'served'
    root.mkdir()
    shutil.copy(small[1], root / 'small.qcow2')
    shutil.copy(small[1], root / 'other.qcow2')
    return str(root)


def _conductors(env, *hosts):
    """A conductor serving each host's board; their logs."""
    logs = []
    for host in hosts:
        logs.append(os.path.join(env.root, f'{host}.log'))
        env.conductor('--host', host, log=logs[-1])
    for log in logs:
        wait_log(log, 'serving host')
    return logs


def _precache(env, url, *more):
    return env.popen('precache', '--image', url, *more)


def _times(env, run_id):
    """(created, last updated) of a run's row in the shared database."""
    with env._sql() as db:
        return tuple(db.execute(sa.text(
            'SELECT created_at, updated_at FROM flowdetails WHERE uuid = :u'),
            {'u': run_id}).one())


def _aged(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_precache_host_by_host(fleet, served, small):
    """precache_concurrency 1 (the default): the second host's job is
    posted once the first host's run finished; the first host fetches,
    the second finds the base (existing); a second call touches it."""
    a, b = fleet.host, fleet.host + '-b'
    logs = _conductors(fleet, a, b)
    rate = os.path.getsize(small[1])  # a download lasts about 1 s
    with httpserver.Server(served, rate=rate) as server:
        url = server.url('small.qcow2')
        r = finish(_precache(fleet, url, '--host', a, '--host', b,
                             '--format', 'json'))
        assert r.rc == 0, r
        rows = r.json()
        assert [(x['host'], x['status'], x['error']) for x in rows] == [
            (a, 'cached', None), (b, 'existing', None)]
        assert len(server.gets('small.qcow2')) == 1
        base = rows[0]['base']
        assert images.info(base)['format'] == 'raw'  # force_raw_images
        assert content_digest(base) == content_digest(small[0])
        first, second = (_times(fleet, x['run']) for x in rows)
        assert second[0] > first[1]  # posted after the first one finished

        _aged(base, 3 * DAY)
        again = finish(_precache(fleet, url, '--host', a, '--host', b,
                                 '-f', 'value', '-c', 'host', '-c',
                                 'status'))
        assert again.rc == 0, again
        assert again.out.splitlines() == [f'{a} existing', f'{b} existing']
        assert time.time() - os.stat(base).st_mtime < 600
        assert len(server.gets('small.qcow2')) == 1
    for proc in fleet.conductors:
        assert stop(proc) == 0
    assert fleet.jobs() == []
    assert {fleet.flow_state(i) for i in fleet.run_ids()} == {'SUCCESS'}
    assert temporaries(fleet.instances) == []
    assert 'Traceback' not in ''.join(open(x).read() for x in logs)


def test_precache_two_hosts_at_a_time(fleet, served, small):
    """precache_concurrency 2: both hosts' jobs are posted before either
    run finished."""
    fleet.configure('[image_cache]\nprecache_concurrency = 2')
    a, b = fleet.host, fleet.host + '-b'
    _conductors(fleet, a, b)
    rate = os.path.getsize(small[1])
    with httpserver.Server(served, rate=rate) as server:
        r = finish(_precache(fleet, server.url('small.qcow2'), '--host', a,
                             '--host', b, '--format', 'json'))
        assert r.rc == 0, r
    rows = r.json()
    assert sorted(x['status'] for x in rows) == ['cached', 'existing']
    first, second = (_times(fleet, x['run']) for x in rows)
    assert second[0] < first[1] and first[0] < second[1]  # both in flight


def test_two_precaches_on_one_host_at_once(fleet, served, small):
    """Two pre-caches of two images run side by side in one conductor:
    neither is refused as if they built one instance."""
    _conductors(fleet, fleet.host)
    rate = os.path.getsize(small[1]) // 2
    with httpserver.Server(served, rate=rate) as server:
        procs = [_precache(fleet, server.url(name), '--host', fleet.host,
                           '--format', 'json')
                 for name in ('small.qcow2', 'other.qcow2')]
        results = [finish(p) for p in procs]
    for r in results:
        assert r.rc == 0, r
        assert [x['status'] for x in r.json()] == ['cached']
    runs = [r.json()[0]['run'] for r in results]
    first, second = (_times(fleet, i) for i in runs)
    assert second[0] < first[1] and first[0] < second[1]  # side by side


def test_a_host_without_conductor_and_a_failing_image(fleet, served):
    a, nobody = fleet.host, 'nobody-' + fleet.host
    _conductors(fleet, a)
    with httpserver.Server(served) as server:
        r = finish(_precache(fleet, server.url('small.qcow2'), '--host',
                             nobody, '--host', a, '--timeout', '1',
                             '--format', 'json'))
        assert r.rc == 1, r
        assert r.error_line() == (
            f'imagepipe: error: precache failed on 1 of 2 hosts: {nobody}')
        rows = r.json()
        assert [(x['host'], x['status'], x['run']) for x in rows[:1]] == [
            (nobody, 'error', None)]
        assert rows[0]['error'] == (
            f'no conductor of host {nobody} took its job within 1s: the job '
            'was taken off the board')
        assert rows[1]['status'] == 'cached'
        assert fleet.jobs('--host', nobody) == []
        assert fleet.run_ids() == [rows[1]['run']]  # the job's run went too

        missing = finish(_precache(fleet, server.url('missing.qcow2'),
                                   '--host', a, '--format', 'json'))
    assert missing.rc == 1, missing
    [row] = missing.json()
    assert row['status'] == 'error' and '404' in row['error'], row
    assert fleet.flow_state(row['run']) == 'REVERTED'
    assert fleet.jobs() == []
