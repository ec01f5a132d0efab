"""Runs that fail revert (leaving what was there before) and ``imagepipe
resume`` retries them once the cause is gone (see runner_env for how runs
are driven).
"""

import hashlib
import os
import shutil

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import PATH
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import qemu_img_wrapper
from tests.functional.runner_env import runs_json
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import tmpfs

pytestmark = pytest.mark.slow


# -- failures revert ----------------------------------------------------------

def test_failures_revert_and_leave_earlier_files(tmp_path, small):
    """ENOSPC in the download and a corrupt image, on a 20 MiB tmpfs
    instances_path holding an earlier run's files."""
    huge_dir = str(tmp_path / 'huge')
    _, huge = ext4_qcow2(huge_dir, 'huge', 32,
                          {'data.bin': os.urandom(24 * MiB)})
    corrupt = str(tmp_path / 'corrupt.qcow2')
    with open(small[1], 'rb') as f, open(corrupt, 'wb') as out:
        out.write(f.read()[:os.path.getsize(small[1]) // 2])

    with tmpfs(str(tmp_path / 'instances'), '20m') as instances:
        env = Env(tmp_path / 'env', instances=instances)
        ok = env.run(small[1], 'vm-ok')
        assert ok.rc == 0, ok
        before = {p: (content_digest(p), os.stat(p).st_mtime_ns)
                  for p in all_files(instances)}

        full = env.run(huge, 'vm-full')
        assert full.rc == 1, full
        full_id = first_run_id(full)
        assert full.error_line() == (
            f'imagepipe: error: run {full_id} failed and was reverted at '
            f'step root-fetch: {_part_of(env, huge)}: no space left on '
            'device')

        bad = env.run(corrupt, 'vm-bad')
        assert bad.rc == 1, bad
        bad_id = first_run_id(bad)
        line = bad.error_line()
        assert line.startswith(
            f'imagepipe: error: run {bad_id} failed and was reverted at step '
            'root-inspect: image '), line
        assert 'is unacceptable: qemu-img check exit status' in line

        after = {p: (content_digest(p), os.stat(p).st_mtime_ns)
                 for p in all_files(instances)}
        # nothing half-written, earlier files untouched; only lock files
        # are new
        assert {p: v for p, v in after.items() if '/locks/' not in p} == {
            p: v for p, v in before.items() if '/locks/' not in p}
        for name in ('vm-full', 'vm-bad'):
            made = os.path.join(instances, name)
            assert not os.path.exists(made) or os.listdir(made) == []

    listed = runs_json(env)
    assert listed[full_id]['state'] == 'REVERTED'
    assert listed[full_id]['failed_step'] == 'root-fetch'
    assert listed[full_id]['error'].endswith('no space left on device')
    assert listed[bad_id]['state'] == 'REVERTED'
    assert listed[bad_id]['failed_step'] == 'root-inspect'
    assert 'qemu-img check exit status' in listed[bad_id]['error']
    assert listed[first_run_id(ok)]['state'] == 'SUCCESS'
    # unfinished only, by default: none
    assert [r for r in env.cli('runs', '--format', 'json').json()
            if r['unfinished']] == []


def _part_of(env, image):
    digest = hashlib.sha1(image.encode()).hexdigest()
    return os.path.join(env.instances, '_base', digest + '.part')


def test_reverted_runs_are_retried_by_resume(tmp_path, small):
    """A tool error, then a server that is down: both runs revert, and
    ``resume`` retries each once the cause is gone, reusing the cache."""
    root = str(tmp_path / 'served')
    os.makedirs(root)
    for name in ('a.qcow2', 'b.qcow2'):
        shutil.copy(small[1], os.path.join(root, name))
    failing = qemu_img_wrapper(
        str(tmp_path / 'bin'),
        'create) echo "qemu-img: simulated failure" >&2; exit 1;;')
    env = Env(tmp_path / 'env')

    server = httpserver.Server(root)
    with server:
        port = server.port
        a = server.url('a.qcow2')
        env.path = failing
        r = env.run(a, 'vm-a')
        env.path = PATH
        assert r.rc == 1, r
        a_id = first_run_id(r)
        line = r.error_line()
        assert line.startswith(f'imagepipe: error: run {a_id} failed and was '
                               'reverted at step root-overlay: qemu-img '
                               'create'), line
        assert line.endswith('qemu-img: simulated failure')
        assert os.listdir(os.path.join(env.instances, 'vm-a')) == []
        assert temporaries(env.instances) == []
        base = os.path.join(env.instances, '_base',
                            hashlib.sha1(a.encode()).hexdigest())
        assert os.path.exists(base)  # a published cache entry stays

        r = env.cli('resume', a_id)
        assert r.rc == 0, r
        assert r.out.startswith(f'run {a_id} (REVERTED): retrying')
        assert len(server.gets('a.qcow2')) == 1  # the cache was reused
        assert env.result(a_id, 'root-fetch')['cached'] is True
        b = server.url('b.qcow2')

    r = env.run(b, 'vm-b')  # the server is down
    assert r.rc == 1, r
    b_id = first_run_id(r)
    assert f'reverted at step root-fetch: {b}: unreachable' in r.error_line()
    assert env.flow_state(b_id) == 'REVERTED'
    assert temporaries(env.instances) == []

    with httpserver.Server(root, port=port) as server:
        r = env.cli('resume', b_id)
        assert r.rc == 0, r
        assert len(server.gets('b.qcow2')) == 1
    listed = runs_json(env)
    assert listed[b_id]['state'] == 'SUCCESS'
    assert listed[b_id]['error'] is None
    for vm in ('vm-a', 'vm-b'):
        images.sh('qemu-img', 'check', os.path.join(env.instances, vm,
                                                    'disk'))
    assert temporaries(env.instances) == []


def test_glance_token_from_the_environment_is_not_stored(
        tmp_path, small, monkeypatch):
    """OS_TOKEN reaches Glance on run and on resume, never the database."""
    raw, qcow2 = small
    token, image_id = 'tok-5d1e0c9a77', '8b7e5d0c-3f1a-4c2e-9d6b-1a2b3c4d5e6f'
    env = Env(tmp_path / 'env')
    with httpserver.Server(os.path.dirname(qcow2), token=token) as server:
        server.add_image(image_id, os.path.basename(qcow2),
                         size=os.path.getsize(qcow2), disk_format='qcow2')
        with open(env.conf, 'a') as f:
            f.write(f'[DEFAULT]\nglance_api_servers = {server.base_url}\n')
        r = env.run(image_id)
        assert r.rc == 1 and 'authentication required (HTTP 401' in r.err
        monkeypatch.setenv('OS_TOKEN', token)
        r = env.cli('resume', first_run_id(r))
        assert r.rc == 0, r
        assert [g['path'] for g in server.gets()][-1] == (
            f'/v2/images/{image_id}/file')
    for path in all_files(env.root):  # the database, its -wal, its locks
        if os.path.basename(path).startswith('runs.sqlite'):
            with open(path, 'rb') as f:
                assert token.encode() not in f.read()
