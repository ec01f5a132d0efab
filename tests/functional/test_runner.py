"""Crash, signal, lock and failure behaviour of ``imagepipe run|runs|show|
resume``, driven through the real command line in subprocesses, on a
temporary SQLite run database and real images (see runner_env for how).
"""

import concurrent.futures
import copy
import hashlib
import json
import os
import shutil
import signal
import time

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import PATH
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import qemu_img_wrapper
from tests.functional.runner_env import qemu_info
from tests.functional.runner_env import runs_json
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import the_part
from tests.functional.runner_env import tmpfs
from tests.functional.runner_env import wait_for

pytestmark = pytest.mark.slow

FOLSOM_STEPS = ['root-fetch', 'root-inspect', 'root-convert', 'root-publish',
                'root-copy-base', 'root-resize-base', 'root-resize-fs-base',
                'root-overlay', 'verify']
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

@pytest.fixture(scope='module')
def big(tmp_path_factory, served):
    """An environment fetching big.qcow2 from a server on a fixed port,
    with the snapshot of an uninterrupted folsom run of it."""
    root, raw = served
    env = Env(tmp_path_factory.mktemp('big') / 'env')
    with httpserver.Server(root) as server:
        env.server, env.url, env.raw = server, server.url('big.qcow2'), raw
        clean = env.run(env.url)
        assert clean.rc == 0, clean
        env.want = snapshot(env.instances)
        yield env


@pytest.fixture
def big_env(big):
    big.wipe()
    big.server.rate = None
    big.mark = len(big.server.requests)
    yield big
    big.server.rate = None


def new_gets(env):
    """The GETs of big.qcow2 since the test started."""
    return [g for g in env.server.gets()[env.mark:]
            if g['path'] == '/big.qcow2']


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


def start_slow_convert(env, tmp_path, rate):
    """A run in a process group of its own, once its convert has started.

    The real qemu-img converts at ``rate`` (a 32 MiB convert takes ~30 ms
    otherwise), so that the convert is surely in progress; ``env.path`` is
    to be reset by the caller.
    """
    env.path = qemu_img_wrapper(
        str(tmp_path / 'bin'),
        f'convert) shift; exec "$REAL" convert -r {rate} "$@";;')
    p = env.popen('run', '--image', env.url, '--instance', 'vm1',
                  '--root-gb', '1', group=True)
    wait_for(lambda: [f for f in all_files(env.instances)
                      if f.endswith('.converted')], 'the convert to start')
    return p


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


# -- refusals -----------------------------------------------------------------

def test_a_crashed_run_listed_shown_guarded_and_resumed(tmp_path, small):
    """``runs`` and ``show`` of a crashed run; a new ``run`` of its instance
    and a ``resume`` by a graph that changed are refused, and leave the run
    as it was: ``resume`` then finishes it."""
    env = Env(tmp_path / 'env')
    image = small[1]
    r = env.run(image, kill_after='root-convert')
    assert killed(r), r
    run_id = first_run_id(r)

    table = env.cli('runs')  # unfinished runs, by default
    assert table.rc == 0, table
    header, _, row = table.out.splitlines()[:3]
    assert header.split()[:4] == ['RUN', 'RELEASE', 'INSTANCE', 'STATE']
    assert row.split()[:4] == [run_id[:8], 'folsom', 'vm1', 'INTERRUPTED']
    assert '(unfinished)' in table.out          # the cell may wrap
    shown = env.cli('show', run_id)
    assert shown.rc == 0, shown
    lines = shown.out.splitlines()
    # left RUNNING by a process that is gone: resumable, so not "RUNNING"
    assert lines[:2] == [f'run {run_id}: folsom INTERRUPTED, instance vm1',
                         f'image {image}']
    assert [ln.split()[:2] for ln in lines[4:4 + len(FOLSOM_STEPS)]] == (
        [[s, 'SUCCESS'] for s in FOLSOM_STEPS[:3]]
        + [[s, 'PENDING'] for s in FOLSOM_STEPS[3:]])
    shown = env.cli('show', run_id[:8], '--format', 'json').json()
    assert (shown['run'], shown['state'], shown['active']) == (
        run_id, 'INTERRUPTED', False)
    assert [s['step'] for s in shown['steps']] == FOLSOM_STEPS
    assert shown['steps'][2]['result']['path'].endswith('.converted')

    again = env.run(image)
    assert again.rc == 2, again
    assert again.error_line() == (
        f'imagepipe: error: instance vm1 has an unfinished run {run_id} '
        f'(RUNNING): continue it with "imagepipe resume {run_id}" or '
        f'abandon it with "imagepipe abandon {run_id}"')
    assert env.run_ids() == [run_id]

    saved = {}

    def stale(meta):
        saved.update(copy.deepcopy(meta))
        meta['imagepipe']['fingerprint'] = '0123456789abcdef'

    env.edit_meta(run_id, stale)
    r = env.cli('resume', run_id)
    assert r.rc == 2, r
    assert r.out == ''
    assert r.error_line() == (
        f'imagepipe: error: run {run_id} was made by another version of the '
        f'folsom flow (graph 0123456789abcdef, now '
        f'{saved["imagepipe"]["fingerprint"]}): it cannot be resumed safely; '
        f'abandon it with "imagepipe abandon {run_id}"')
    assert env.steps(run_id)['root-publish'] == 'PENDING'

    env.edit_meta(run_id, lambda meta: meta.update(saved))
    r = env.cli('resume', run_id)
    assert r.rc == 0, r
    assert env.flow_state(run_id) == 'SUCCESS'
    assert temporaries(env.instances) == []


def test_fingerprint_follows_the_graph(tmp_path, small):
    """In-process: what a changed installation would rebuild is told apart,
    and ``rebuild`` refuses it."""
    from imagepipe import exception
    from imagepipe import flows
    from imagepipe.conf import loader
    from imagepipe.conf import settings as conf_settings
    from imagepipe.runner import driver
    from imagepipe.runner import store

    env = Env(tmp_path / 'env')
    kwargs = {'release': 'folsom',
              'settings': conf_settings.snapshot(
                  loader.load([env.conf], release='folsom')),
              'request': {'image': small[1], 'instance': 'vm1',
                          'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0}}
    flow = flows.factory(**kwargs)
    assert store.fingerprint(flow) == store.fingerprint(
        flows.factory(**kwargs))
    for key, value in (('images_type_effective', 'raw'),
                       ('force_raw_images', False),
                       ('instances_path', '/elsewhere')):
        other = copy.deepcopy(kwargs)
        other['settings'][key] = value
        assert store.fingerprint(flows.factory(**other)) != store.fingerprint(
            flow), key

    class Stored:
        name, uuid = 'root', 'r1'
        meta = {'factory': {'name': flows.FACTORY, 'kwargs': kwargs},
                'imagepipe': {'release': 'folsom',
                              'fingerprint': store.fingerprint(flow)}}

    assert store.fingerprint(driver.rebuild(Stored)) == store.fingerprint(flow)
    Stored.meta['factory']['kwargs']['settings']['force_raw_images'] = False
    with pytest.raises(exception.Refused,
                       match='another version of the folsom'):
        driver.rebuild(Stored)
    Stored.meta['factory']['kwargs']['release'] = 'nosuchrelease'
    with pytest.raises(exception.Refused, match='cannot be rebuilt'):
        driver.rebuild(Stored)


def test_two_resumes_cannot_both_drive_a_run(big_env):
    env = big_env
    env.server.rate = 8 * MiB
    r = env.run(env.url, kill_during='root-fetch:0.1')
    assert killed(r), r
    run_id = first_run_id(r)

    env.server.rate = 1 * MiB  # the first resume is kept downloading
    first = env.popen('resume', run_id)
    assert first.stdout.readline().startswith(f'run {run_id} (RUNNING)')
    second = env.popen('resume', run_id)
    listing = env.popen('runs', '--format', 'json')
    other = env.popen('run', '--image', env.url, '--instance', 'vm1',
                      '--root-gb', '1')
    second, other = finish(second), finish(other)
    listed = json.loads(listing.communicate(timeout=60)[0])
    assert first.poll() is None, 'the first resume ended too early'
    env.server.rate = None
    assert second.rc == 2, second
    assert second.out == ''
    assert second.error_line() == (
        f'imagepipe: error: run {run_id} is being driven by another process')
    assert other.rc == 2, other
    assert other.error_line() == (
        'imagepipe: error: instance vm1 '
        f'({os.path.join(env.instances, "vm1")}) is being built by another '
        'process')
    assert [(x['id'], x['active']) for x in listed] == [(run_id, True)]
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, (out, err)
    assert env.flow_state(run_id) == 'SUCCESS'
    assert_same(snapshot(env.instances), env.want)


def test_run_refuses_an_instance_with_a_disk(tmp_path, small):
    env = Env(tmp_path / 'env')
    disk = os.path.join(env.instances, 'vm1', 'disk')
    os.makedirs(os.path.dirname(disk))
    with open(disk, 'wb') as f:
        f.write(b'precious')
    r = env.run(small[1])
    assert r.rc == 2, r
    assert r.out == ''
    assert r.error_line() == (
        f'imagepipe: error: instance vm1 already has {disk}: imagepipe does '
        'not overwrite an existing disk (Nova skipped it); remove it or '
        'choose another instance name')
    with open(disk, 'rb') as f:
        assert f.read() == b'precious'
    assert env.run_ids() == []
    assert not os.path.exists(os.path.join(env.instances, '_base'))


# -- one download for concurrent runs -----------------------------------------

def test_four_concurrent_runs_download_once(tmp_path, small):
    raw, qcow2 = small
    root = str(tmp_path / 'served')
    os.makedirs(root)
    shutil.copy(qcow2, os.path.join(root, 'small.qcow2'))
    env = Env(tmp_path / 'env')
    rate = os.path.getsize(qcow2) / 1.5  # the download lasts 1.5 s
    with httpserver.Server(root, rate=rate) as server:
        url = server.url('small.qcow2')
        procs = [env.popen('run', '--image', url, '--instance', f'vm{i}',
                           '--root-gb', '1') for i in range(4)]
        results = [finish(p) for p in procs]
        for r in results:
            assert r.rc == 0, r
        assert len(server.gets('small.qcow2')) == 1
    fetched = [env.result(first_run_id(r), 'root-fetch')['cached']
               for r in results]
    assert sorted(fetched) == [False, True, True, True]

    base = env.result(first_run_id(results[0]), 'root-publish')['path']
    assert content_digest(base) == content_digest(raw)
    disks = [os.path.join(env.instances, f'vm{i}', 'disk') for i in range(4)]
    digests = {content_digest(d) for d in disks}
    assert len(digests) == 1  # four identical overlays
    for disk in disks:
        chain = qemu_info(disk)
        assert chain[0]['format'] == 'qcow2'
        assert chain[0]['virtual-size'] == 1024 ** 3
        assert chain[0]['full-backing-filename'] == base + '_1'
        assert chain[1]['format'] == 'raw'
        images.sh('qemu-img', 'check', disk)
    assert temporaries(env.instances) == []


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
