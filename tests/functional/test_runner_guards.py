"""What ``imagepipe run|runs|show|resume`` refuse, and what they share:
a crashed run listed, shown and guarded, a changed graph, two resumes of
one run, an instance that has a disk, concurrent runs of one image (see
runner_env for how runs are driven).
"""

import copy
import json
import os

import pytest

from tests import images
from tests.functional.runner_env import FOLSOM_STEPS
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import assert_same
from tests.functional.runner_env import concurrent_runs
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import qemu_info
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import temporaries

pytestmark = pytest.mark.slow


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
    env = Env(tmp_path / 'env')
    results, gets = concurrent_runs(env, qcow2, 4, tmp_path / 'served')
    assert [r.rc for r in results] == [0] * 4, results
    assert len(gets) == 1
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
