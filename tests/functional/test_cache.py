"""The image cache's life cycle through the real command line: each
release's pass over a prepared _base (golden plan, then a real pass), the
bases of unfinished runs and existing disks kept, two passes at once,
hostile files listed and left, delete then clean. Ages are set with
os.utime."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from tests import images
from tests import standins
from tests.functional.runner_env import Env
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import finish
from tests.functional.runner_env import killed

pytestmark = pytest.mark.slow

DAY = 86400
H = 'c' * 40
Y = 'd' * 40

#: name -> age in seconds of the prepared base directory
PREPARED = {H: 3 * DAY, f'{H}_10': 3 * DAY, f'{H}.part': 3 * DAY,
            f'{H}_10.sha1': 3 * DAY, f'{H}_10.info': 3 * DAY,
            Y: 100, f'{Y}_10': 2 * 3600, 'swap_512': 3 * DAY,
            'ephemeral_1_abcdefg': 3 * DAY, 'junk': 3 * DAY}

OLD_REMOVES = {'essex': set(),  # remove_unused_base_images was False
               'folsom': {H, f'{H}_10', f'{H}_10.sha1', f'{Y}_10'}}
for _r in ('grizzly', 'havana', 'icehouse', 'juno'):
    OLD_REMOVES[_r] = OLD_REMOVES['folsom']
OLD_REMOVES['gazpacho'] = {H, f'{H}_10', f'{H}_10.sha1', f'{H}_10.info',
                           f'{Y}_10', 'swap_512', 'ephemeral_1_abcdefg'}
#: records that went with their base
RECORDS = {'folsom': {f'{H}_10.info'}}
for _r in ('grizzly', 'havana', 'icehouse', 'juno'):
    RECORDS[_r] = RECORDS['folsom']


def aged(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def prepare(env, files=PREPARED):
    base = os.path.join(env.instances, '_base')
    os.makedirs(base, exist_ok=True)
    for name, age in files.items():
        with open(os.path.join(base, name), 'wb') as f:
            f.write(b'x' * 4096)
        aged(os.path.join(base, name), age)
    return base


def actions(result):
    assert result.rc == 0, result
    return {f['name']: f['action'] for f in result.json()['files']}


@pytest.mark.parametrize('release', sorted(OLD_REMOVES))
def test_pass_per_release(tmp_path, release):
    env = Env(tmp_path, release=release)
    base = prepare(env)
    plan = actions(env.cli('cache', 'clean', '--dry-run', '--format',
                           'json'))
    assert {n for n, a in plan.items() if a == 'remove'} == \
        OLD_REMOVES[release]
    assert plan[f'{H}.part'] == plan['junk'] == 'ignored'
    assert plan[Y] == 'keep'  # too young, or (Essex) the option off
    assert os.listdir(base) and len(os.listdir(base)) == len(PREPARED)
    r = env.cli('cache', 'clean', '--format', 'json')
    assert r.rc == 0, r
    gone = OLD_REMOVES[release] | RECORDS.get(release, set())
    assert set(os.listdir(base)) == set(PREPARED) - gone
    shown = env.cli('show', r.json()['run'], '--format', 'json')
    assert shown.json()['state'] == 'SUCCESS'
    assert {s['step'] for s in shown.json()['steps']} == {
        f'remove-{n}' for n in OLD_REMOVES[release]}


def test_two_passes_at_once_remove_each_file_once(tmp_path):
    env = Env(tmp_path, release='gazpacho')
    names = {hashlib.sha1(str(i).encode()).hexdigest(): 2 * DAY
             for i in range(30)}
    base = prepare(env, names)
    procs = [env.popen('cache', 'clean', '--format', 'json')
             for _ in range(2)]
    results = [finish(p) for p in procs]
    for r in results:
        assert r.rc == 0 and 'Traceback' not in r.err, r
    removed = [set(r.json()['removed']) for r in results]
    assert removed[0] | removed[1] == {os.path.join(base, n) for n in names}
    assert not removed[0] & removed[1]
    assert os.listdir(base) == []


def test_hostile_files_listed_never_followed_nor_removed(tmp_path):
    env = Env(tmp_path, release='gazpacho')
    base = prepare(env, {H: 3 * DAY})
    outside = tmp_path / 'outside'
    outside.write_bytes(b'keep me')
    link = os.path.join(base, Y)
    os.symlink(outside, link)
    aged(link, 3 * DAY)
    foreign = os.path.join(base, 'e' * 40)
    with open(foreign, 'wb') as f:
        f.write(b'theirs')
    os.chown(foreign, 4242, 4242)
    aged(foreign, 3 * DAY)
    vm = os.path.join(env.instances, 'vm1')
    os.makedirs(vm)
    with open(os.path.join(vm, 'disk'), 'wb') as f:
        f.write(b'QFI\xfb\0\0\0\3' + (10 ** 9).to_bytes(8, 'big')
                + (40).to_bytes(4, 'big'))
    listed = env.cli('cache', 'list', '--format', 'json')
    assert listed.rc == 0, listed
    problems = {e['name']: e['problem'] for e in listed.json()}
    assert problems == {H: None, Y: 'symbolic link',
                        'e' * 40: 'owned by uid 4242'}
    warnings = listed.err.strip().splitlines()
    assert len(warnings) == 3, listed.err
    assert sum('corrupt qcow2 header' in w for w in warnings) == 1
    # the corrupt disk may be backed by any base: none is removed
    kept = env.cli('cache', 'clean', '--format', 'json')
    assert kept.rc == 0, kept
    assert kept.json()['removed'] == []
    assert os.path.exists(os.path.join(base, H))
    os.unlink(os.path.join(vm, 'disk'))
    r = env.cli('cache', 'clean', '--format', 'json')
    assert r.rc == 0, r
    assert r.json()['removed'] == [os.path.join(base, H)]
    assert os.path.islink(link) and outside.read_bytes() == b'keep me'
    assert os.path.exists(foreign)


@pytest.fixture
def image(tmp_path):
    return ext4_qcow2(str(tmp_path), 'img', 16, {'hello': b'world'})[1]


def test_unfinished_run_keeps_its_base(tmp_path, image):
    """A run stopped between the fetch and the overlay (killed after the
    base was published): its base is kept however old, and the run then
    finishes on it."""
    env = Env(tmp_path / 'env', release='gazpacho')
    r = env.run(image, kill_after='root-publish')
    assert killed(r), r
    base_dir = os.path.join(env.instances, '_base')
    (hexname,) = [n for n in os.listdir(base_dir) if len(n) == 40]
    aged(os.path.join(base_dir, hexname), 3 * DAY)
    plan = actions(env.cli('cache', 'clean', '--dry-run', '--format',
                           'json'))
    assert plan[hexname] == 'in-use'
    clean = env.cli('cache', 'clean', '--format', 'json')
    assert clean.rc == 0 and clean.json()['removed'] == [], clean
    assert os.path.exists(os.path.join(base_dir, hexname))
    resumed = env.cli('resume', '--all')
    assert resumed.rc == 0, resumed


def test_delete_then_clean(tmp_path, image):
    env = Env(tmp_path / 'env', release='gazpacho')
    assert env.run(image).rc == 0
    base_dir = os.path.join(env.instances, '_base')
    (hexname,) = [n for n in os.listdir(base_dir) if len(n) == 40]
    base = os.path.join(base_dir, hexname)
    listed = {e['name']: e for e in env.cli(
        'cache', 'list', '--format', 'json').json()}
    assert {u['how'] for u in listed[hexname]['users']} == {'backing',
                                                            'image'}
    aged(base, 3 * DAY)
    clean = env.cli('cache', 'clean', '--format', 'json')
    assert clean.json()['touched'] == [base] and os.path.exists(base)
    assert time.time() - os.stat(base).st_mtime < 600  # Nova's touch
    deleted = env.cli('delete', '--instance', 'vm1', '--format', 'json')
    assert deleted.rc == 0, deleted
    assert sorted(os.path.basename(p) for p in deleted.json()['removed']) \
        == ['disk', 'disk.info']
    assert not os.path.exists(os.path.join(env.instances, 'vm1'))
    aged(base, DAY - 60)          # under the minimum age: stays
    assert env.cli('cache', 'clean', '--format', 'json').json()[
        'removed'] == []
    aged(base, DAY + 60)          # past it: gone
    assert env.cli('cache', 'clean', '--format', 'json').json()[
        'removed'] == [base]
    assert not os.path.exists(base)


def test_delete_refused_while_a_run_is_unfinished(tmp_path, image):
    env = Env(tmp_path / 'env', release='gazpacho')
    assert killed(env.run(image, kill_after='root-overlay'))
    r = env.cli('delete', '--instance', 'vm1')
    assert r.rc == 2 and 'unfinished run' in r.error_line(), r
    assert os.path.exists(os.path.join(env.instances, 'vm1', 'disk'))


#: the real command with the volume groups' /dev in a stand-in root
WITH_DEV = ('import sys; from imagepipe.cache import volumes; '
            'volumes.DEV = sys.argv.pop(1); from imagepipe.cmd import main; '
            'sys.exit(main.main())')


def test_delete_clears_and_removes_the_instances_volumes(tmp_path,
                                                         monkeypatch):
    lvm = standins.Standins(tmp_path / 'lvm', monkeypatch)
    env = Env(tmp_path / 'env', release='icehouse')
    env.configure('[libvirt]\nimages_type = lvm\nimages_volume_group = vg0\n'
                  'volume_clear = zero\nvolume_clear_size = 1')
    os.makedirs(os.path.join(env.instances, 'vm1'))
    with open(os.path.join(env.instances, 'vm1', 'disk.info'), 'w') as f:
        f.write('{}')
    for lv in ('vm1_disk', 'vm1_disk.local', 'vm11_disk'):
        with open(lvm.lv_path(lv), 'wb') as f:
            f.truncate(4 * images.MiB)
    env.path = lvm.bin + os.pathsep + env.path
    r = finish(subprocess.Popen(
        [sys.executable, '-c', WITH_DEV, lvm.dev, '--config-file', env.conf,
         '--release', env.release, 'delete', '--instance', 'vm1',
         '--format', 'json'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env.environ()))
    assert r.rc == 0, r
    mine = [lvm.lv_path('vm1_disk'), lvm.lv_path('vm1_disk.local')]
    assert json.loads(r.out)['volumes_removed'] == mine
    assert os.listdir(os.path.join(lvm.dev, 'vg0')) == ['vm11_disk']
    assert not os.path.exists(os.path.join(env.instances, 'vm1'))
    assert lvm.calls('shred', 'lvremove') == [
        ['shred', '-n0', '-z', f'-s{images.MiB}', mine[0]],
        ['shred', '-n0', '-z', f'-s{images.MiB}', mine[1]],
        ['lvremove', '-f', *mine]]


def test_precache_fetches_then_touches(tmp_path, image):
    env = Env(tmp_path / 'env', release='gazpacho')
    first = env.cli('precache', '--image', image, '--format', 'json')
    assert first.rc == 0 and first.json()['status'] == 'cached', first
    base = first.json()['base']
    assert images.info(base)['format'] == 'raw'  # force_raw_images
    assert [r['state'] for r in env.cli('runs', '--all', '--format',
                                        'json').json()] == ['SUCCESS']
    aged(base, 3 * DAY)
    again = env.cli('precache', '--image', image, '--format', 'json')
    assert again.json()['status'] == 'existing', again
    assert time.time() - os.stat(base).st_mtime < 600
    # the touch is the run's first step, as on a host's conductor
    assert env.result(again.json()['run'], 'precache-touch') == {
        'existing': True, 'base': base}
    assert env.steps(again.json()['run'])['root-fetch'] == 'SUCCESS'
    old = Env(tmp_path / 'old', release='juno')
    refused = old.cli('precache', '--image', image)
    assert refused.rc == 2 and 'precache' in refused.error_line()


@pytest.mark.parametrize('release, setting, said', [
    ('essex', '-1', False),        # every tick: Essex skipped no tick
    ('folsom', '0', True),
    ('grizzly', '-1', True),       # never scheduled
    ('juno', '0', True),
    ('gazpacho', '0', False),      # the periodic task rate
])
def test_clean_says_when_the_release_never_made_the_pass(tmp_path, release,
                                                         setting, said):
    env = Env(tmp_path, release=release)
    env.configure(f'[DEFAULT]\nimage_cache_manager_interval = {setting}')
    r = env.cli('cache', 'clean', '--dry-run')
    assert r.rc == 0, r
    note = (f'imagepipe: warning: image_cache_manager_interval is '
            f"{setting}: this release's Nova never ran the pass; this one "
            'runs because it was asked for')
    assert (note in r.err.splitlines()) is said, r
