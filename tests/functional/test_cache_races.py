"""Cache passes racing the runs that use the cache, through the real command
line: a pass racing a pre-cache of the same image, and a pass whose plan was
made before a run of the image started (the re-check inside the base's
lock). Ages are set with os.utime."""

import os
import signal
import time

import pytest

from imagepipe.tasks import locks
from tests import httpserver
from tests.functional.runner_env import Env
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import finish
from tests.functional.runner_env import killed

pytestmark = pytest.mark.slow

DAY = 86400
ROUNDS = 10


def aged(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


@pytest.fixture
def image(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    ext4_qcow2(str(served), 'img', 16, {'hello': b'world'})
    return served


def test_clean_racing_precache_leaves_a_whole_base_or_none(tmp_path, image):
    """Each round starts a pre-cache over a throttled server and two passes
    while it runs; every other round the base is there already, three days
    old, so a pass wants it gone while the pre-cache wants it touched (in
    one of those rounds out of two the first pass starts before the
    pre-cache). Whichever wins, the base is whole (the first one's bytes)
    or absent, and nothing else (.part, .converted) is left."""
    env = Env(tmp_path / 'env', release='gazpacho')
    base_dir = os.path.join(env.instances, '_base')
    with httpserver.Server(image, rate=4 * 1024 * 1024) as server:
        url = server.url('img.qcow2')
        first = env.cli('precache', '--image', url, '--format', 'json')
        assert first.rc == 0, first
        base = first.json()['base']
        whole = content_digest(base)
        for n in range(ROUNDS):
            present = n % 2 == 1
            if present and not os.path.exists(base):
                assert env.cli('precache', '--image', url).rc == 0
            if present:
                aged(base, 3 * DAY)
            elif os.path.exists(base):
                os.unlink(base)
            clean_first = n % 4 == 1
            if clean_first:
                early = env.popen('cache', 'clean', '--format', 'json')
            precache = env.popen('precache', '--image', url, '--format',
                                 'json')
            cleans = [finish(early)] if clean_first else []
            cleans += [env.cli('cache', 'clean', '--format', 'json')
                       for _ in range(2 - len(cleans))]
            done = finish(precache)
            for r in [done, *cleans]:
                assert r.rc == 0 and 'Traceback' not in r.err, r
            left = sorted(os.listdir(base_dir))
            assert left in ([], [os.path.basename(base)]), left
            if left:
                assert content_digest(base) == whole



def test_a_run_started_after_the_plan_keeps_the_base(tmp_path, image):
    """The pass plans to remove an old unused base, then waits for the
    base's lock (held here) and dies there; a run of the image then starts
    on the base and stops unfinished; the base is old again (os.utime): only
    the re-check of the runs inside the lock can keep it when the pass is
    resumed."""
    env = Env(tmp_path / 'env', release='gazpacho')
    url = str(image / 'img.qcow2')
    first = env.cli('precache', '--image', url, '--format', 'json')
    assert first.rc == 0, first
    base = first.json()['base']
    name = os.path.basename(base)
    aged(base, 3 * DAY)
    plan = env.cli('cache', 'clean', '--dry-run', '--format', 'json')
    assert {f['name']: f['action'] for f in plan.json()['files']} == {
        name: 'remove'}
    lock_path = os.path.join(env.instances, 'locks')
    locks.hold(name, lock_path)
    try:
        clean = env.popen('cache', 'clean', '--format', 'json')
        run_id = _waiting_step(env, f'remove-{name}', clean)
        clean.send_signal(signal.SIGKILL)
        finish(clean)
    finally:
        locks.release(name)
    assert os.path.exists(base)
    assert killed(env.run(url, kill_after='root-overlay'))
    aged(base, 3 * DAY)
    resumed = env.cli('resume', run_id)
    assert resumed.rc == 0, resumed
    assert env.result(run_id, f'remove-{name}')['removed'] is False
    assert 'used meanwhile by run' in env.result(
        run_id, f'remove-{name}')['kept']
    assert os.path.exists(base)


def _waiting_step(env, step, proc, timeout=60):
    """The id of the run whose ``step`` has started (it waits for a lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc)
        for run_id in env.run_ids():
            if env.steps(run_id).get(step) == 'RUNNING':
                return run_id
        time.sleep(0.05)
    raise AssertionError(f'{step} never started')
