"""A run SIGKILLed between any two steps, in the middle of a download or of
a convert (its qemu-img with it), and resumed: ``imagepipe run|resume``
through the real command line in subprocesses, on a temporary SQLite run
database and real images (see runner_env for how); the resumed run leaves
what a run never interrupted leaves.
"""

import concurrent.futures
import os
import signal

import pytest

from tests.functional.runner_env import FOLSOM_STEPS
from tests.functional.runner_env import PATH
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import new_gets
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import start_slow_convert
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import the_part
from tests.functional.runner_env import wait_for

pytestmark = pytest.mark.slow


GRIZZLY_STEPS = ['root-fetch', 'root-inspect', 'root-convert',
                 'root-publish', 'root-overlay', 'root-resize',
                 'root-resize-fs', 'verify']


# -- SIGKILL between any two steps --------------------------------------------

def _kill_after_each_step(root, image, release, steps):
    """Kill after every step in turn (each resume is killed after the next
    step), resume once more: the run ends as a run never interrupted."""
    env = Env(root, release=release)
    clean = env.run(image)
    assert clean.rc == 0, clean
    want = snapshot(env.instances)
    assert any(rel.endswith(os.sep + 'disk') for rel in want)
    env.wipe()

    r = env.run(image, kill_after=steps[0])
    assert killed(r), r
    run_id = first_run_id(r)
    assert env.run_ids() == [run_id]  # the flow detail's UUID
    for i, step in enumerate(steps):
        if i:
            r = env.cli('resume', run_id, kill_after=step)
            assert killed(r), r
        assert env.flow_state(run_id) == 'RUNNING'
        states = env.steps(run_id)
        assert [states[s] for s in steps[:i + 1]] == ['SUCCESS'] * (i + 1)
        assert {states[s] for s in steps[i + 1:]} <= {'PENDING'}, states
    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert env.flow_state(run_id) == 'SUCCESS'
    assert temporaries(env.instances) == [], release
    assert_same(snapshot(env.instances), want, release)


def test_sigkill_after_each_step_then_resume(tmp_path, small):
    """The folsom and the grizzly default flows, side by side."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = [pool.submit(_kill_after_each_step, tmp_path / release,
                            small[1], release, steps)
                for release, steps in (('folsom', FOLSOM_STEPS),
                                       ('grizzly', GRIZZLY_STEPS))]
    for future in done:
        future.result()



# -- SIGKILL in the middle of a step ------------------------------------------

def test_sigkill_mid_download_resumes_with_range(big_env):
    env = big_env
    env.server.rate = 8 * MiB
    size = os.path.getsize(os.path.join(env.server.root, 'big.qcow2'))
    r = env.run(env.url, kill_during='root-fetch:0.3')
    assert killed(r), r
    run_id = first_run_id(r)
    assert env.steps(run_id)['root-fetch'] == 'RUNNING'
    have = os.path.getsize(the_part(env))
    assert 0.3 * size <= have < size

    env.server.rate = None
    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    gets = new_gets(env)
    assert len(gets) == 2, gets
    assert gets[1]['range'] == f'bytes={have}-'
    assert gets[1]['sent'] == size - have  # only the rest came again
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), env.want)


@pytest.mark.parametrize('whom', ['group', 'imagepipe'])
def test_sigkill_mid_convert_kills_qemu_img_too(big_env, tmp_path, whom):
    """Killed with its group (a crash of the host's service), or alone: its
    qemu-img dies with it (PR_SET_PDEATHSIG), instead of writing on into the
    file that the resumed run converts again."""
    env = big_env
    # 2 MiB/s: the convert goes on for 16 s after the kill, unless killed
    p = start_slow_convert(env, tmp_path, '2M')
    if whom == 'group':
        os.killpg(p.pid, signal.SIGKILL)
    else:
        os.kill(p.pid, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    env.path = PATH
    assert p.returncode == -signal.SIGKILL, (out, err)
    # the whole process group is gone, qemu-img included
    wait_for(lambda: not _group_alive(p.pid), 'the process group to die',
             timeout=5)
    run_id = out.split()[1]
    assert env.steps(run_id)['root-convert'] == 'RUNNING'
    converted = [p for p in all_files(env.instances)
                 if p.endswith('.converted')]
    assert converted and the_part(env)

    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert len(new_gets(env)) == 1  # the download was not repeated
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), env.want)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
