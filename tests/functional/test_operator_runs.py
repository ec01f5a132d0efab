"""What an operator meets: a prompt Ctrl-C wherever a run is, and a way out
of every run (abandon, forget, runs --prune), through the real command line
on a temporary SQLite run database (see runner_env)."""

import os
import shutil
import signal

import pytest

from tests.functional.runner_env import PATH
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import new_gets
from tests.functional.runner_env import part_size
from tests.functional.runner_env import runs_json
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import start_slow_convert
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import the_part
from tests.functional.runner_env import wait_for

pytestmark = pytest.mark.slow

def _size(env):
    return os.path.getsize(os.path.join(env.server.root, 'big.qcow2'))


def _start(env):
    p = env.popen('run', '--image', env.url, '--instance', 'vm1',
                  '--root-gb', '1')
    return p, p.stdout.readline().split()[1]


def _resumed(env, run_id):
    env.path = PATH
    env.server.rate = None
    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert temporaries(env.instances) == []
    assert_same(snapshot(env.instances), env.want)


# -- Ctrl-C -------------------------------------------------------------------

def test_sigint_mid_download_stops_it_keeps_the_part(big_env):
    """The download stops at once (not at its end), its .part stays and
    resume continues it with a Range request."""
    env = big_env
    env.server.rate = 1 * MiB  # 12 s or more for the whole image
    p, run_id = _start(env)
    wait_for(lambda: part_size(env) > 0, 'the download to start')
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    have = part_size(env)
    assert 0 < have < _size(env) // 2, have  # it did not wait for the end
    assert err.splitlines()[-1] == (
        f'imagepipe: run {run_id} suspended: continue it with "imagepipe '
        f'resume {run_id}"')
    assert env.flow_state(run_id) == 'SUSPENDED'
    assert env.steps(run_id)['root-fetch'] == 'PENDING'
    assert runs_json(env)[run_id]['state'] == 'SUSPENDED'

    _resumed(env, run_id)
    gets = new_gets(env)
    assert len(gets) == 2, gets
    assert gets[1]['range'] == f'bytes={have}-'


def test_sigint_mid_convert_stops_qemu_img(big_env, tmp_path):
    """SIGINT to imagepipe alone: its qemu-img convert is stopped by it."""
    env = big_env
    p = start_slow_convert(env, tmp_path, '256K')  # 2 minutes at least
    run_id = p.stdout.readline().split()[1]
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert ('imagepipe: step root-convert was stopped as the run suspended:'
            ' it runs again on resume') in err.splitlines()
    steps = env.steps(run_id)
    assert (steps['root-inspect'], steps['root-convert']) == (
        'SUCCESS', 'PENDING')
    _resumed(env, run_id)
    assert len(new_gets(env)) == 1


def test_sigint_mid_copy_stops_cp(big_env, tmp_path):
    env = big_env
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    started = tmp_path / 'cp-started'
    with open(bin_dir / 'cp', 'w') as f:
        f.write(f"#!/bin/sh\ntouch {started}\n"
                "trap 'kill $!; exit 143' TERM\n"
                f'sleep 120 & wait $!\nexec {shutil.which("cp")} "$@"\n')
    os.chmod(bin_dir / 'cp', 0o755)
    env.path = f'{bin_dir}:{PATH}'
    p, run_id = _start(env)
    wait_for(started.exists, 'the copy to start', timeout=60)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    assert env.steps(run_id)['root-copy-base'] == 'PENDING'
    _resumed(env, run_id)


def test_two_sigints_leave_a_resumable_run(big_env):
    env = big_env
    env.server.rate = 1 * MiB
    p, run_id = _start(env)
    wait_for(lambda: part_size(env) > 0, 'the download to start')
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (out, err)
    listed = runs_json(env)[run_id]
    assert listed['state'] in ('SUSPENDED', 'INTERRUPTED'), listed
    assert not listed['active']
    _resumed(env, run_id)


# -- abandon, forget, prune ---------------------------------------------------

def _crashed_with_a_disk(env, image):
    r = env.run(image, kill_after='root-overlay')
    assert killed(r), r
    run_id = first_run_id(r)
    disk = os.path.join(env.instances, 'vm1', 'disk')
    assert os.path.exists(disk)
    return run_id, disk


def _bases(env):
    return [p for p in all_files(env.instances)
            if os.sep + '_base' + os.sep in p]


def test_abandon_reverts_keeps_bases_then_run_again(tmp_path, small):
    env = Env(tmp_path / 'env')
    run_id, disk = _crashed_with_a_disk(env, small[1])
    bases = _bases(env)
    r = env.cli('abandon', run_id[:8])
    assert r.rc == 0, r
    assert r.out.splitlines()[-1] == (
        f'run {run_id} abandoned: reverted from step verify')
    assert not os.path.exists(disk)
    assert _bases(env) == bases  # the published cache entries stay
    assert env.flow_state(run_id) == 'REVERTED'
    assert env.steps(run_id)['root-overlay'] == 'REVERTED'

    again = env.run(small[1])
    assert again.rc == 0, again
    r = env.cli('abandon', run_id)
    assert r.rc == 2, r
    assert r.error_line() == (
        f'imagepipe: error: run {run_id} is REVERTED: it is finished, there '
        f'is nothing to abandon; forget it with "imagepipe forget {run_id}"')


def test_abandon_a_run_of_another_version(tmp_path, small):
    """The run stuck for good after an upgrade: resume and run point at
    abandon, which removes what the run recorded without its old graph."""
    env = Env(tmp_path / 'env')
    run_id, disk = _crashed_with_a_disk(env, small[1])
    bases = _bases(env)
    env.edit_meta(run_id, lambda meta: meta['imagepipe'].update(
        fingerprint='0123456789abcdef'))
    r = env.cli('resume', run_id)
    assert r.rc == 2, r
    assert r.error_line().endswith(
        f'abandon it with "imagepipe abandon {run_id}"')
    r = env.run(small[1])
    assert r.rc == 2, r
    assert f'"imagepipe abandon {run_id}"' in r.error_line()

    r = env.cli('abandon', run_id)
    assert r.rc == 0, r
    assert f'removed {disk}' in r.out.splitlines()
    assert not os.path.exists(disk)
    assert _bases(env) == bases
    assert env.flow_state(run_id) == 'REVERTED'
    again = env.run(small[1])
    assert again.rc == 0, again


def test_abandon_refused_while_driven(big_env):
    env = big_env
    env.server.rate = 1 * MiB
    p, run_id = _start(env)
    try:
        wait_for(lambda: part_size(env) > 0, 'the download to start')
        r = env.cli('abandon', run_id)
        assert r.rc == 2, r
        assert r.error_line() == (
            f'imagepipe: error: run {run_id} is being driven by another '
            'process')
        assert the_part(env)
    finally:
        p.kill()
        p.communicate()


def test_forget_and_prune_finished_runs_only(tmp_path, small):
    env = Env(tmp_path / 'env')
    done = first_run_id(env.run(small[1], 'vm0'))
    run_id, _ = _crashed_with_a_disk(env, small[1])
    r = env.cli('forget', run_id)
    assert r.rc == 2, r
    assert r.error_line() == (
        f'imagepipe: error: run {run_id} is unfinished (RUNNING): continue '
        f'it with "imagepipe resume {run_id}" or abandon it with '
        f'"imagepipe abandon {run_id}" first')
    r = env.cli('runs', '--prune', '--older-than', '1')
    assert (r.rc, r.out) == (0, '0 finished run(s) forgotten\n'), r
    r = env.cli('forget', done)
    assert (r.rc, r.out) == (0, f'run {done} forgotten\n'), r
    assert env.run_ids() == [run_id]

    assert env.cli('abandon', run_id).rc == 0
    r = env.cli('runs', '--prune')
    assert (r.rc, r.out) == (0, '1 finished run(s) forgotten\n'), r
    assert env.run_ids() == []


def _wait_for_more(env):
    start = part_size(env)
    wait_for(lambda: part_size(env) > start, 'the download to go on')


def test_sigint_during_resume_all_resumes_no_further_run(big_env):
    """Ctrl-C while ``resume --all`` drives one run: that run suspends and
    the runs after it are left as they were, not started one by one."""
    env = big_env
    env.server.rate = 1 * MiB
    suspended = []
    for instance in ('vm1', 'vm2'):
        p = env.popen('run', '--image', env.url, '--instance', instance,
                      '--root-gb', '1')
        suspended.append(p.stdout.readline().split()[1])
        _wait_for_more(env)
        p.send_signal(signal.SIGINT)
        assert p.wait(60) == 130
    p = env.popen('resume', '--all')
    first = p.stdout.readline()
    while not first.endswith(': resuming\n'):  # a step of the run before
        assert first, 'resume --all printed no resuming line'
        first = p.stdout.readline()
    _wait_for_more(env)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, (first, out, err)
    assert 'resuming' not in out, out  # no second run was started
    assert [runs_json(env)[r]['state'] for r in suspended] == [
        'SUSPENDED', 'SUSPENDED']
    resumed = first.split()[1]
    other, = set(suspended) - {resumed}
    assert err.splitlines()[-1] == (
        f'imagepipe: stopped: run {other} was not resumed')
