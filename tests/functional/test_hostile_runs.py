"""Hostile conditions around runs, through the real command line: an option
that would drop the cache's lock files, two configurations driving one run,
reverts that cannot finish, and a run database or disk that fails. Each ends
in one line and the exit status of the contract (2 nothing was done, 1 the
run failed), never in a traceback, and the state shown never claims more
than happened."""

import hashlib
import json
import os
import subprocess

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import concurrent_runs
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import qemu_img_wrapper
from tests.functional.runner_env import runs_json
from tests.functional.runner_env import tmpfs

pytestmark = pytest.mark.slow


def one_line(result, rc):
    """Exit status ``rc`` and a single error line, which it returns."""
    assert result.rc == rc, result
    line = result.error_line()
    assert 'Traceback' not in result.err and 'unexpected' not in line
    return line


def same_as_image(disk, raw):
    """The guest sees the image's bytes (zeros beyond them)."""
    images.sh('qemu-img', 'compare', '-F', 'raw', disk, raw)


class TestProcessLockingOption:
    """disable_process_locking = true keeps the cache's lock files."""

    def test_six_runs_download_once(self, tmp_path, small):
        raw, qcow2 = small
        env = Env(tmp_path / 'env', release='gazpacho')
        env.configure('[oslo_concurrency]\ndisable_process_locking = true')
        results, gets = concurrent_runs(env, qcow2, 6, tmp_path / 'served')
        assert [r.rc for r in results] == [0] * 6, results
        assert len(gets) == 1
        for i in range(6):
            same_as_image(os.path.join(env.instances, f'vm{i}', 'disk'), raw)

    def test_plan_and_config_say_it_is_ignored(self, tmp_path, small):
        env = Env(tmp_path / 'env', release='juno')
        env.configure('[DEFAULT]\ndisable_process_locking = true')
        why = ('is read but ignored: the image cache locks stay lock files: '
               'every imagepipe run is a process of its own, and with '
               'in-process locks two runs would download into one .part '
               '(the option served the threads of one nova-compute)')
        plan = env.cli('plan', '--image', small[1], '--instance', 'vm1',
                       '--format', 'json')
        assert plan.rc == 0, plan
        assert plan.err.splitlines() == [
            f'imagepipe: warning: [DEFAULT] disable_process_locking = True '
            f'{why}']
        assert json.loads(plan.out)[0]['lock']
        config = env.cli('config', '--format', 'json')
        row, = [r for r in config.json()
                if r['key'] == 'disable_process_locking']
        assert (row['value'], row['note']) == (
            True, 'read, no effect in imagepipe: ' + why.split(
                'ignored: ', 1)[1])


def _suspended_download(env, server, run_env=None):
    """A run of big.qcow2 killed in its download: its id."""
    server.rate = 8 * MiB
    r = (run_env or env).run(server.url('big.qcow2'),
                             kill_during='root-fetch:0.1')
    assert killed(r), r
    return first_run_id(r)


class TestOneDriverPerRunDatabase:
    """Two configurations on one run database, each with its own
    state_path: the run and instance locks are the database's."""

    @pytest.fixture
    def pair(self, tmp_path, served):
        root, raw = served
        a = Env(tmp_path / 'a')
        b = Env(tmp_path / 'b', db=a.db, instances=a.instances)
        with httpserver.Server(root) as server:
            yield a, b, server, raw

    def test_two_resumes_one_driver(self, pair):
        a, b, server, raw = pair
        run_id = _suspended_download(a, server)
        server.rate = 1 * MiB  # the first resume is kept downloading
        first = a.popen('resume', run_id)
        assert first.stdout.readline().startswith(f'run {run_id} (RUNNING)')
        second = b.cli('resume', run_id)
        listed = b.cli('runs', '--format', 'json').json()
        assert first.poll() is None, 'the first resume ended too early'
        server.rate = None
        assert one_line(second, 2) == (
            f'imagepipe: error: run {run_id} is being driven by another '
            'process')
        assert second.out == ''
        assert [(x['id'], x['active']) for x in listed] == [(run_id, True)]
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, (out, err)
        assert a.flow_state(run_id) == 'SUCCESS'
        images.sh('qemu-img', 'check', os.path.join(a.instances, 'vm1',
                                                    'disk'))

    def test_a_run_of_the_instance_from_the_other_config(self, pair):
        a, b, server, raw = pair
        run_id = _suspended_download(a, server)
        server.rate = 1 * MiB
        first = a.popen('resume', run_id)
        assert first.stdout.readline().startswith(f'run {run_id}')
        other = b.run(server.url('big.qcow2'))
        server.rate = None
        assert one_line(other, 2) == (
            'imagepipe: error: instance vm1 '
            f'({os.path.join(a.instances, "vm1")}) is being built by '
            'another process')
        assert finish(first).rc == 0
        assert a.run_ids() == [run_id]

    @pytest.mark.parametrize('length', [220, 255])
    def test_long_instance_names(self, tmp_path, small, length):
        env = Env(tmp_path / 'env')
        name = 'n' * length
        r = env.run(small[1], name)
        assert r.rc == 0, r
        images.sh('qemu-img', 'check', os.path.join(env.instances, name,
                                                    'disk'))
        locks = os.listdir(env.db + '.locks')
        assert len(locks) == 2, locks  # the run's and the instance's
        assert all(len(n) < 128 for n in locks), locks
        assert any(n.startswith('imagepipe-instance-' + 'n' * 64 + '-')
                   for n in locks), locks


class TestRevertThatCannotFinish:
    """A revert that fails says what it left and how to finish; the run
    stays FAILURE until a resume has really reverted it."""

    def _left(self, env, result, step):
        run_id = first_run_id(result)
        line = one_line(result, 1)
        assert line.startswith(f'imagepipe: error: run {run_id} failed at '
                               'step '), line
        assert f'its revert stopped at step {step}: ' in line
        assert line.endswith(f'"imagepipe resume {run_id}" finishes the '
                             'revert')
        assert 'was reverted' not in line
        assert env.flow_state(run_id) == 'FAILURE'
        listed = runs_json(env)[run_id]
        assert (listed['state'], listed['revert_step']) == ('FAILURE', step)
        shown = env.cli('show', run_id)
        assert 'reverted' not in shown.out.split('\n', 1)[0]
        assert f'its revert stopped at step {step}' in ' '.join(
            shown.out.split())                   # the lines wrap at 100
        return run_id

    def test_a_file_the_revert_cannot_remove(self, tmp_path, small):
        """folsom's resized base is grown as ``<hex>_1.tmp``; its resize
        fails and leaves the file immutable, so the copy's revert cannot
        remove it. Once the flag is cleared, resume finishes the revert
        and a retry builds the instance."""
        env = Env(tmp_path / 'env')
        env.path = qemu_img_wrapper(
            str(tmp_path / 'bin'),
            'resize) chattr +i "$4"; echo "qemu-img: simulated" >&2; '
            'exit 1;;')
        r = env.run(small[1])
        env.path = Env(tmp_path).path
        run_id = self._left(env, r, 'root-copy-base')
        base = env.result(run_id, 'root-publish')['path']
        staged = base + '_1.tmp'
        assert f'could not remove {staged} (Operation not permitted)' in (
            one_line(r, 1))
        # taskflow drops a step's result when its revert fails; the
        # step's meta keeps it for the resume
        with env._db() as db:
            meta, = db.execute(
                'SELECT meta FROM atomdetails WHERE parent_uuid = ? AND '
                "name = 'root-copy-base'", (run_id,)).fetchone()
        assert json.loads(meta)['executed']['staged'] == staged

        again = env.cli('resume', run_id)  # the obstacle is still there
        assert again.out.startswith(f'run {run_id} (FAILURE): finishing its '
                                    'revert')
        self._left(env, again, 'root-copy-base')

        subprocess.run(['chattr', '-i', staged], check=True)
        done = env.cli('resume', run_id)
        assert one_line(done, 1).startswith(
            f'imagepipe: error: run {run_id} failed and was reverted at step '
            'root-resize-base: ')
        assert env.flow_state(run_id) == 'REVERTED'
        assert env.steps(run_id)['root-copy-base'] == 'REVERTED'
        assert not os.path.lexists(staged)
        assert not os.path.lexists(base + '_1')
        retried = env.cli('resume', run_id)
        assert retried.rc == 0, retried
        assert os.path.isfile(base + '_1')

    def test_instances_path_is_a_file(self, tmp_path, small):
        """Nothing can be made: the run fails at its first step, one line,
        nothing to revert; once the file is gone the same run succeeds."""
        env = Env(tmp_path / 'env')
        with open(env.instances, 'w') as f:
            f.write('')
        r = env.run(small[1])
        run_id = first_run_id(r)
        assert one_line(r, 1) == (
            f'imagepipe: error: run {run_id} failed and was reverted at step '
            f'root-fetch: cannot open directory {env.instances}/locks: Not '
            'a directory')
        assert env.flow_state(run_id) == 'REVERTED'
        os.unlink(env.instances)
        assert env.cli('resume', run_id).rc == 0

    def test_instances_path_read_only(self, tmp_path, small):
        """A read-only tmpfs (a chmod does not stop root)."""
        instances = str(tmp_path / 'instances')
        os.makedirs(instances)
        mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro',
                                  'tmpfs', instances], capture_output=True)
        if mounted.returncode:
            pytest.skip('cannot mount a tmpfs')
        try:
            env = Env(tmp_path / 'env', instances=instances)
            r = env.run(small[1])
            line = one_line(r, 1)
            assert line.endswith(f'cannot create directory {instances}/locks'
                                 ': Read-only file system'), line
            assert env.flow_state(first_run_id(r)) == 'REVERTED'
        finally:
            subprocess.run(['umount', '-l', instances], check=False)


class TestDatabaseAndDiskFailures:

    def _corrupt(self, env, small):
        assert env.run(small[1]).rc == 0
        with open(env.db, 'r+b') as f:  # the second page, a table's
            f.seek(4096)
            f.write(os.urandom(4096))

    def test_malformed_database_pages(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        self._corrupt(env, small)
        for args in (('runs', '--all'), ('resume', '--all'),
                     ('run', '--image', small[1], '--instance', 'vm2')):
            r = env.cli(*args)
            assert one_line(r, 2) == (
                f'imagepipe: error: run database {env.db} is not usable: '
                'database disk image is malformed'), args

    def test_not_a_database(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        with open(env.db, 'wb') as f:
            f.write(os.urandom(8192))
        assert one_line(env.cli('runs'), 2) == (
            f'imagepipe: error: run database {env.db} is not usable: file '
            'is not a database')

    def test_state_path_on_a_full_filesystem(self, tmp_path, small):
        with tmpfs(str(tmp_path / 'state'), '1m') as state:
            env = Env(tmp_path / 'env', state=state,
                      db=os.path.join(state, 'runs.sqlite'))
            assert env.run(small[1]).rc == 0
            with open(os.path.join(state, 'fill'), 'wb') as f:
                with pytest.raises(OSError):
                    while True:
                        f.write(bytes(64 * 1024))
                        f.flush()
            for args in (('run', '--image', small[1], '--instance', 'vm2'),
                         ('runs',)):
                line = one_line(env.cli(*args), 2)
                assert line.startswith(
                    f'imagepipe: error: run database {env.db} is not '
                    'usable: '), line
                assert line.endswith(f'(the filesystem of {state} is full)')

    def test_full_disk_during_convert(self, tmp_path):
        _, big = ext4_qcow2(str(tmp_path), 'big', 32,
                            {'data.bin': os.urandom(12 * MiB)})
        with tmpfs(str(tmp_path / 'instances'), '20m') as instances:
            env = Env(tmp_path / 'env', instances=instances)
            r = env.run(big)
            hexname = hashlib.sha1(big.encode()).hexdigest()
            converted = os.path.join(instances, '_base',
                                     hexname + '.converted')
            assert one_line(r, 1) == (
                f'imagepipe: error: run {first_run_id(r)} failed and was '
                f'reverted at step root-convert: {converted}: no space left '
                f'on device (the filesystem of {instances}/_base is full)')
            assert os.listdir(os.path.join(instances, '_base')) == []

