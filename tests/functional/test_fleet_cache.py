"""The image cache manager's periodic pass in ``imagepipe conductor``: a
real redis-server and PostgreSQL, the conductor as a subprocess, the base
directory prepared with os.utime ages. Every wait is for a condition, with
a deadline."""

import fcntl
import os
import time
import uuid

import pytest
import sqlalchemy as sa

from tests.functional.fleet_env import HostEnv
from tests.functional.fleet_env import stop
from tests.functional.fleet_env import wait_log
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import wait_for
from tests.functional.servers import pg_url  # noqa: F401
from tests.functional.servers import postgres  # noqa: F401
from tests.functional.servers import redis_server  # noqa: F401
from tests.functional.test_cache import DAY
from tests.functional.test_cache import aged
from tests.functional.test_cache import prepare

pytestmark = pytest.mark.slow

A, B = 'a' * 40, 'b' * 40
#: a pass every 2 s, unused bases removed once an hour old
PASSES = """
[DEFAULT]
image_cache_manager_interval = 2
remove_unused_base_images = true
remove_unused_original_minimum_age_seconds = 3600
remove_unused_resized_minimum_age_seconds = 3600
"""


@pytest.fixture
def host_env(tmp_path, pg_url, redis_server):  # noqa: F811
    made = []

    def make(release='grizzly', conf=PASSES):
        env = HostEnv(tmp_path / f'h{len(made)}', pg_url, redis_server.url,
                      host=f'h-{uuid.uuid4().hex[:8]}', release=release)
        env.configure(conf)
        made.append(env)
        return env
    yield make
    for env in made:
        env.stop_conductors()


def passes(env):
    """(run id, state) of every cache pass in the run database."""
    with env._sql() as db:
        return [tuple(r) for r in db.execute(sa.text(
            'SELECT uuid, state FROM flowdetails WHERE name = :n '
            'ORDER BY created_at'), {'n': f'{env.release}-cache-clean'})]


def _log(env):
    with open(os.path.join(env.root, 'conductor.log')) as f:
        return f.read()


def _pass_lines(env):
    return [x for x in _log(env).splitlines() if 'image cache pass' in x]


def _started(env):
    proc = env.conductor()
    wait_log(os.path.join(env.root, 'conductor.log'), 'serving host')
    return proc


def test_the_conductor_removes_unused_bases_and_keeps_used_ones(host_env,
                                                                 small):
    env = host_env()
    base_dir = prepare(env, {A: 3 * DAY})
    conductor = _started(env)
    r = finish(env.popen('boot', '--host', env.host, '--image', small[1],
                         '--instance', 'vm1', '--root-gb', '1', '--wait',
                         '--timeout', '60'))
    assert r.rc == 0, r
    boot = first_run_id(r)
    # no command: the conductor's own pass removes the unused old base
    wait_for(lambda: not os.path.exists(os.path.join(base_dir, A)),
             'the unused base removed', timeout=60)
    (used,) = [n for n in os.listdir(base_dir) if len(n) == 40]
    used = os.path.join(base_dir, used)
    aged(used, 3 * DAY)     # old, but the instance's disk is backed by it

    def refreshed():
        assert os.path.exists(used), 'the base in use was removed'
        return time.time() - os.stat(used).st_mtime < 3600
    wait_for(refreshed, 'a pass that refreshed the base in use', timeout=60)
    assert env.flow_state(boot) == 'SUCCESS'

    assert stop(conductor) == 0
    runs = passes(env)
    assert len(runs) >= 2, runs
    # SIGTERM may have come in the middle of the last pass
    assert {s for _, s in runs[:-1]} == {'SUCCESS'}, runs
    assert runs[-1][1] in ('SUCCESS', 'SUSPENDED'), runs
    (remover,) = [run for run, _ in runs
                  if env.result(run, f'remove-{A}') is not None]
    assert env.result(remover, f'remove-{A}') == {'removed': True,
                                                  'kept': None}
    assert not any(f'remove-{os.path.basename(used)}' in env.steps(run)
                   for run, _ in runs)
    lines = _pass_lines(env)
    assert len(lines) == len(runs), lines       # one line per pass
    for (run, state), line in zip(runs, lines):
        assert line.startswith(f'INFO: image cache pass: run {run}: '
                               f'{state}: '), line
    (line,) = [x for x in lines if remover in x]
    assert line.startswith(f'INFO: image cache pass: run {remover}: '
                           'SUCCESS: 1 removed, 0 kept, '), line
    assert 'a pass every 2s, the first in 2s' in _log(env)
    assert 'Traceback' not in _log(env)


@pytest.mark.parametrize('release, off', [
    ('grizzly', 'image_cache_manager_interval = 0'),
    ('gazpacho', '[image_cache]\nmanager_interval = -1')])
def test_the_release_s_off_value_runs_no_pass(host_env, release, off):
    """Nothing runs in a window of 5 s, more than twice the 2 s interval
    at which the test above sees passes. The window alone cannot show that
    no pass ever comes; the start line does: it is printed from the very
    interval the pass thread would wait, and says there is none."""
    env = host_env(release, PASSES.replace(
        'image_cache_manager_interval = 2', off))
    base_dir = prepare(env, {A: 3 * DAY})
    conductor = _started(env)
    wait_log(os.path.join(env.root, 'conductor.log'),
             'image cache manager: no periodic pass')
    with pytest.raises(AssertionError, match='timed out'):
        wait_for(lambda: passes(env) or _pass_lines(env)
                 or not os.path.exists(os.path.join(base_dir, A)),
                 'a pass', timeout=5)
    assert stop(conductor) == 0
    assert passes(env) == [] and _pass_lines(env) == []
    assert os.path.exists(os.path.join(base_dir, A))


def test_a_failed_pass_is_logged_and_made_again(host_env):
    env = host_env()
    base_dir = os.path.join(env.instances, '_base')
    os.makedirs(env.instances)
    with open(base_dir, 'w') as f:     # a file where the directory goes
        f.write('not a directory')
    conductor = _started(env)
    wait_for(lambda: len([x for x in _pass_lines(env)
                          if 'failed' in x]) >= 2, 'two failed passes',
             timeout=60)
    os.unlink(base_dir)
    prepare(env, {A: 3 * DAY})
    wait_for(lambda: not os.path.exists(os.path.join(base_dir, A)),
             'the next pass to remove the unused base', timeout=60)
    assert conductor.poll() is None
    assert stop(conductor) == 0
    failed = [x for x in _pass_lines(env) if 'failed' in x]
    assert failed[0] == (
        f'ERROR: image cache pass failed: NotADirectoryError: [Errno 20] '
        f"Not a directory: '{base_dir}': the next in 2s"), failed
    assert 'Traceback' not in _log(env)


def test_sigterm_suspends_the_pass_in_progress(host_env):
    """The test holds the fetch lock of the first unused base, as a boot in
    another process would: the pass waits in that removal; SIGTERM; once
    the conductor logged it, the lock is let go: that removal finishes, the
    next one never starts."""
    env = host_env()
    base_dir = prepare(env, {A: 3 * DAY, B: 3 * DAY})
    lock_dir = os.path.join(env.instances, 'locks')
    os.makedirs(lock_dir)
    with open(os.path.join(lock_dir, f'nova-{A}'), 'w') as held:
        fcntl.lockf(held, fcntl.LOCK_EX)
        conductor = _started(env)
        run = wait_for(lambda: passes(env), 'a pass')[0][0]
        wait_for(lambda: env.steps(run).get(f'remove-{A}') == 'RUNNING',
                 'the removal waiting for the lock', timeout=60)
        conductor.terminate()
        # logged once the passes are told to stop
        wait_log(os.path.join(env.root, 'conductor.log'), 'SIGTERM')
    assert stop(conductor) == 0
    assert env.flow_state(run) == 'SUSPENDED'
    assert env.steps(run) == {f'remove-{A}': 'SUCCESS',
                              f'remove-{B}': 'PENDING'}
    assert sorted(os.listdir(base_dir)) == [B]
    assert passes(env) == [(run, 'SUSPENDED')]
    assert _pass_lines(env) == [
        f'INFO: image cache pass: run {run}: SUSPENDED: 1 removed, 0 kept, '
        '0 in use refreshed, 0 warnings']
