"""SIGTERM to a run's process group mid-step: the run suspends and
``imagepipe resume`` finishes it (see runner_env for how runs are driven).
"""

import os
import signal
import time

import pytest

from tests.functional.runner_env import PATH
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import new_gets
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import start_slow_convert
from tests.functional.runner_env import temporaries

pytestmark = pytest.mark.slow


# -- SIGINT and SIGTERM -------------------------------------------------------

def test_sigterm_to_the_group_mid_convert_suspends(big_env, tmp_path):
    """SIGTERM to the whole process group (as a service manager, or Ctrl-C
    in a terminal, does): qemu-img dies of it and its step fails, yet the
    run suspends and the step runs again on resume."""
    env = big_env
    p = start_slow_convert(env, tmp_path, '8M')
    run_id = p.stdout.readline().split()[1]
    time.sleep(0.2)
    os.killpg(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    env.path = PATH
    assert p.returncode == 130, (out, err)
    assert 'root-convert: FAILED' in out
    assert err.splitlines()[1:] == [
        'imagepipe: step root-convert was stopped as the run suspended: it '
        'runs again on resume',
        f'imagepipe: run {run_id} suspended: continue it with "imagepipe '
        f'resume {run_id}"']
    assert env.flow_state(run_id) == 'SUSPENDED'
    steps = env.steps(run_id)
    assert (steps['root-inspect'], steps['root-convert']) == (
        'SUCCESS', 'PENDING')

    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert len(new_gets(env)) == 1
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), env.want)
