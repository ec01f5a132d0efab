"""Today's Nova (2026.1 Gazpacho, 33.0.2) against nova-modern.md.

The golden tests follow test_flows.py: nova.conf files written here, read by
the loader, snapshotted, then ``flows.factory``; the ordered commands of the
plan are compared with the combination matrix (reference 2.9) in the
reference's notation (``$B`` the image cache, ``$hex`` the cache name of the
image, ``$D`` the instance directory). The real runs build small images,
run the flow with ``taskflow.engines.load`` on a SQLite file and look at
what is left on disk.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
from taskflow import engines
from taskflow import states
from taskflow.persistence import backends

from imagepipe import exception
from imagepipe import flows
from imagepipe.cmd import main
from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import releases
from imagepipe.conf import settings as conf_settings
from imagepipe.flows import article
from imagepipe.flows import deviations
from imagepipe.flows import root_qcow2
from imagepipe.flows import steps
from imagepipe.runner import store
from imagepipe.tasks import inspect
from imagepipe.tasks import locks
from imagepipe.tasks import recheck
from tests import httpserver
from tests import images
from tests.plans import CONVERT
from tests.plans import FETCH
from tests.plans import HEX
from tests.plans import IMAGE
from tests.plans import INSPECT
from tests.plans import INSTANCE
from tests.plans import PUBLISH
from tests.plans import VERIFY
from tests.plans import Plan

GiB = 1024 ** 3
MiB = 1024 ** 2
S10 = str(10 * GiB)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))



def conf_text(instances, default, groups):
    lines = ['[DEFAULT]', f'instances_path = {instances}']
    lines += [f'{k} = {v}' for k, v in default.items()]
    for group, values in groups.items():
        lines += [f'[{group}]'] + [f'{k} = {v}' for k, v in values.items()]
    return '\n'.join(lines) + '\n'


GROUPS = ('libvirt', 'workarounds', 'compute', 'glance', 'image_cache',
          'oslo_concurrency', 'imagepipe')


@pytest.fixture
def build(tmp_path):
    """build(root_gb=10, ..., libvirt={...}, **[DEFAULT] options)."""
    instances = str(tmp_path / 'instances')

    def build(root_gb=10, ephemeral_gb=0, swap_mb=0, image=IMAGE,
              release='gazpacho', **options):
        groups = {g: options.pop(g) for g in GROUPS if g in options}
        path = tmp_path / 'nova.conf'
        path.write_text(conf_text(instances, options, groups))
        settings = conf_settings.snapshot(
            loader.load([str(path)], release=release))
        kwargs = {'release': release, 'settings': settings,
                  'request': {'image': image, 'instance': INSTANCE,
                              'root_gb': root_gb,
                              'ephemeral_gb': ephemeral_gb,
                              'swap_mb': swap_mb}}
        return Plan(flows.factory(**kwargs), kwargs, instances,
                    settings['image_cache_subdirectory_name'])
    return build


def lvm(vg='vg'):
    return {'libvirt': {'images_type': 'lvm', 'images_volume_group': vg}}


# -- the combination matrix (reference 2.9) ----------------------------------

# F1-F8: download, inspect, convert with -f, rename; no size check here
INTAKE = {True: [FETCH, INSPECT, CONVERT, PUBLISH],
          False: [FETCH, INSPECT, ('root-convert', []), PUBLISH]}

QI_BASE = 'qemu-img info --force-share --output=json $B/$hex'
CHECK_SIZE = ('root-check-size', [QI_BASE])     # Q4 / L3 / V2.1


def qcow2_row(base_format):
    """Q2 inspector, Q3/Q4 touch + size, Q6 inspector + QI, overlay at S."""
    cluster = ',cluster_size=<cluster size of the base>'
    return [
        ('root-disk-info', []),
        ('root-inspect-base', []),
        CHECK_SIZE,
        ('root-recheck-base', [QI_BASE]),
        ('root-overlay', [
            'qemu-img create -f qcow2 -o backing_file=$B/$hex,'
            f'backing_fmt={base_format}{cluster} $D/disk.tmp {S10}']),
    ]


def flat_row(fmt):
    """L2/L3, then cp, resize -f, e2label/e2fsck/resize2fs, disk.info."""
    return [
        CHECK_SIZE,
        ('root-copy',
         ['cp --sparse=always --reflink=auto $B/$hex $D/disk.tmp']),
        ('root-resize', [f'qemu-img resize -f {fmt} $D/disk {S10}']),
        ('root-resize-fs', ['e2label $D/disk', 'e2fsck -fp $D/disk',
                            'resize2fs $D/disk']),
        ('root-disk-info', []),
    ]


LV = '/dev/vg/vm1_disk'


def lvm_row(fmt):
    """V2 under $hex: size, vgs, lvcreate, convert, e2fsck/resize2fs."""
    return [
        CHECK_SIZE,
        ('root-create-volume', [
            'vgs --noheadings --nosuffix --separator | --units b '
            '-o vg_size,vg_free vg',
            f'lvcreate -L <larger of {S10} and virtual_size of '
            'root-inspect>b -n vm1_disk vg']),
        ('root-write-volume',
         [f'qemu-img convert -t none -O raw -f {fmt} $B/$hex {LV}']),
        ('root-resize-fs', [f'e2fsck -fp {LV}', f'resize2fs {LV}']),
    ]


PREALLOCATE = ('root-preallocate', ['fallocate -l 1 $D/disk.fallocate_test',
                                    f'fallocate -n -l {S10} $D/disk'])

MATRIX = {
    # images_type (effective), force_raw_images: commands after FETCH
    ('qcow2', True): qcow2_row('raw'),
    ('qcow2', False): qcow2_row('<probed format>'),
    ('flat', True): flat_row('raw'),
    ('flat', False): flat_row('<probed format>'),
    ('lvm', True): lvm_row('raw'),
    ('lvm', False): lvm_row('<probed format>'),
}

CONFIG = {'qcow2': {}, 'flat': {'use_cow_images': False}, 'lvm': lvm()}


@pytest.mark.parametrize('preallocate', ['none', 'space'])
@pytest.mark.parametrize('backend,force_raw', list(MATRIX))
def test_combination_matrix(build, backend, force_raw, preallocate):
    plan = build(force_raw_images=force_raw, preallocate_images=preallocate,
                 **CONFIG[backend])
    expected = INTAKE[force_raw] + MATRIX[backend, force_raw]
    # fallocate on the overlay or the copy; an LV is never preallocated
    if preallocate == 'space' and backend != 'lvm':
        expected = expected + [PREALLOCATE]
    assert plan.commands() == expected + [VERIFY]
    assert flows.warnings('gazpacho', plan.settings) == []


@pytest.mark.parametrize('backend', ['qcow2', 'flat', 'lvm'])
def test_locks_one_after_the_other(build, backend):
    """[X $hex] around FETCH, then around the copy/overlay/LV step; the size
    check outside the second lock for Flat/Qcow2, inside it for Lvm."""
    plan = build(preallocate_images='space', **CONFIG[backend])
    fetch = ['root-fetch', 'root-inspect', 'root-convert', 'root-publish']
    copy = {'qcow2': ['root-recheck-base', 'root-overlay'],
            'flat': ['root-copy', 'root-resize', 'root-resize-fs'],
            'lvm': ['root-check-size', 'root-create-volume',
                    'root-write-volume', 'root-resize-fs']}[backend]
    locked = [s['name'] for s in plan.steps if s['lock']]
    assert locked == fetch + copy
    assert {plan.lock(n) for n in locked} == {'$hex'}
    ends = [a.name for a in plan.flow
            if (a.inject.get('lock') or {}).get('last')]
    assert ends == ['root-publish', copy[-1]]
    assert plan.inject('root-fetch')['lock']['path'] == (
        f'{plan.instances}/locks')
    if backend != 'lvm':
        assert plan.lock('root-check-size') is None
    if backend == 'qcow2':
        assert plan.lock('root-inspect-base') is None


@pytest.mark.parametrize('conf', [
    {'use_cow_images': False},
    {'libvirt': {'images_type': 'flat'}},
    {'libvirt': {'images_type': 'raw'}},
    {'use_cow_images': False, 'libvirt': {'images_type': 'default'}},
])
def test_flat_raw_and_default_without_cow_are_one_backend(build, conf):
    plan = build(**conf)
    assert plan.settings['images_type_effective'] == 'raw'
    assert plan.commands() == INTAKE[True] + MATRIX['flat', True] + [VERIFY]


def test_qcow2_explicit_is_the_default(build):
    assert build(libvirt={'images_type': 'qcow2'},
                 use_cow_images=False).commands() == (
        INTAKE[True] + MATRIX['qcow2', True] + [VERIFY])


def test_overlay_born_at_flavor_size(build):
    plan = build()
    assert plan.inject('root-overlay')['size'] == 10 * GiB
    assert plan.inject('root-overlay')['cluster_size'] == 'inherit'
    # no resize, no filesystem growth of a qcow2 root (25.0.0+)
    assert not [n for n in plan.names() if 'resize' in n]
    assert root_qcow2.BORN_SIZED in plan.notes('root-overlay')
    # root_gb 0: no size for the overlay, nothing to compare
    zero = build(root_gb=0)
    assert zero.commands()[-2] == ('root-overlay', [
        'qemu-img create -f qcow2 -o backing_file=$B/$hex,backing_fmt=raw,'
        'cluster_size=<cluster size of the base> $D/disk.tmp'])
    assert zero.inject('root-check-size')['size'] is None
    assert dict(zero.commands())['root-check-size'] == []


def test_size_checked_before_conversion_too(build):
    """Nova compares the base only after fetch and convert; imagepipe
    also compares the inspected image first, and says so."""
    for conf in CONFIG.values():
        plan = build(**conf)
        assert plan.inject('root-inspect')['max_size'] == 10 * GiB
        assert deviations.note('size-before-convert') in plan.notes(
            'root-inspect')
        assert 'root-check-size' in plan.names()
    assert build(root_gb=0).inject('root-inspect')['max_size'] is None
    assert build(**lvm()).inject('root-create-volume')['check_size'] is False


def test_size_check_touches_the_base_except_on_lvm(build):
    assert build().inject('root-check-size')['touch'] is True
    assert build(use_cow_images=False).inject('root-check-size')['touch']
    assert build(**lvm()).inject('root-check-size')['touch'] is False


def test_inspection_is_nova_s_own(build):
    plan = build(force_raw_images=False)
    assert type(plan.atoms['root-inspect']) is inspect.DeepInspect
    assert plan.inject('root-inspect')['deep'] is True
    assert plan.inject('root-inspect')['vmdk_allowed_types'] == [
        'streamOptimized', 'monolithicSparse']
    notes = plan.all_notes()
    assert deviations.note('qcow2-check') in plan.notes('root-inspect')
    # what older flows say is not true of today's Nova
    for old in (deviations.note('inspection'),
                deviations.note('fallocate-probe')):
        assert old not in notes
    for key in article.NOTES:
        assert article.note(key) not in notes
    assert plan.inject('root-inspect-base')['inspector'] is True
    assert plan.inject('root-recheck-base')['inspector'] is True
    assert plan.inject('root-recheck-base')['qemu_checks'] is True


def test_vmdk_allowed_types_reach_the_inspections(build):
    plan = build(compute={'vmdk_allowed_types': 'streamOptimized'})
    for name in ('root-inspect', 'root-recheck-base'):
        assert plan.inject(name)['vmdk_allowed_types'] == ['streamOptimized']
    empty = build(compute={'vmdk_allowed_types': ''})
    assert empty.inject('root-inspect')['vmdk_allowed_types'] == []


def test_disable_deep_image_inspection(build):
    plan = build(workarounds={'disable_deep_image_inspection': True})
    assert plan.inject('root-inspect')['deep'] is False
    # Q2 goes; Q6 keeps its qemu-img checks without the inspector
    assert 'root-inspect-base' not in plan.names()
    assert plan.inject('root-recheck-base')['inspector'] is False
    assert plan.inject('root-recheck-base')['qemu_checks'] is True
    assert any('disable_deep_image_inspection' in n
               for n in plan.notes('root-inspect'))


def test_convert_notes_that_nova_pins_too(build):
    notes = build().notes('root-convert')
    assert not any('Nova ran it without -f' in n for n in notes)
    assert any('as Nova' in n and '-f' in n for n in notes)


def test_lvm_write_notes_the_probed_convert(build):
    plan = build(**lvm())
    assert deviations.note('pinned-format') in plan.notes(
        'root-write-volume')
    assert plan.inject('root-write-volume')['method'] == 'convert'
    assert plan.inject('root-resize-fs')['variant'] == 'device'
    assert plan.inject('root-create-volume')['volume_clear'] == 'zero'
    assert 'root-disk-info' not in plan.names()


def test_lvm_volume_clear_zero_is_shred_n0_z(build):
    plan = build(**lvm())
    notes = plan.notes('root-create-volume')
    assert any(f'shred -n0 -z -s<size of the LV> {LV}' in n for n in notes)


def test_flat_resize_quirk_noted_only_for_non_raw_bases(build):
    flat = deviations.note('flat-resize')
    assert flat in build(
        use_cow_images=False, force_raw_images=False).notes('root-resize')
    assert flat not in build(use_cow_images=False).notes('root-resize')
    assert build(use_cow_images=False).inject('root-resize-fs')[
        'variant'] == 'strict'


def test_disk_info_is_atomic(build):
    for conf in ({}, {'use_cow_images': False}):
        plan = build(**conf)
        assert plan.inject('root-disk-info')['atomic'] is True
    assert build().inject('root-disk-info')['format'] == 'qcow2'
    assert build(use_cow_images=False).inject('root-disk-info')[
        'format'] is None


def test_ephemeral_and_swap(build):
    plan = build(ephemeral_gb=2, swap_mb=512)
    fs = hashlib.md5(b'vfat').hexdigest()[:7]
    commands = dict(plan.commands())
    assert commands['ephemeral-create-base'] == [
        f'qemu-img create -f raw $B/ephemeral_2_{fs}.tmp 2G',
        f'mkfs -t vfat -n ephemeral0 $B/ephemeral_2_{fs}.tmp']
    assert commands['ephemeral-overlay'] == [
        f'qemu-img create -f qcow2 -o backing_file=$B/ephemeral_2_{fs},'
        'backing_fmt=raw,cluster_size=<cluster size of the base> '
        f'$D/disk.local.tmp {2 * GiB}']
    assert commands['swap-create-base'] == [
        'qemu-img create -f raw $B/swap_512.tmp 512M',
        'mkswap $B/swap_512.tmp']
    assert plan.lock('ephemeral-overlay') == f'ephemeral_2_{fs}'
    flat = build(use_cow_images=False, ephemeral_gb=2)
    assert dict(flat.commands())['ephemeral-create'][1] == (
        'mkfs -t vfat -n ephemeral0 $D/disk.local.tmp')


def test_ephemeral_on_lvm_not_supported(build):
    with pytest.raises(exception.NotSupported):
        build(ephemeral_gb=1, **lvm())


@pytest.mark.parametrize('conf', [
    {}, {'force_raw_images': False}, {'use_cow_images': False},
    {'use_cow_images': False, 'force_raw_images': False}, lvm(),
    {'preallocate_images': 'space'},
    {'workarounds': {'disable_deep_image_inspection': True}},
])
def test_every_flow_wires_up_and_rebuilds(build, conf):
    """Every argument is injected or produced; the same JSON gives the same
    graph (resume)."""
    on_lvm = 'libvirt' in conf
    plan = build(ephemeral_gb=0 if on_lvm else 1,
                 swap_mb=0 if on_lvm else 64, **conf)
    engine = engines.load(plan.flow)
    engine.compile()
    engine.prepare()
    engine.validate()
    kwargs = json.loads(json.dumps(plan.kwargs))
    again = flows.factory(**kwargs)
    assert store.fingerprint(again) == store.fingerprint(plan.flow)
    for step in plan.steps:
        assert len(step['notes']) == len(set(step['notes'])), step['name']
    json.dumps(plan.steps)


def test_no_glance_servers_means_the_catalog(build):
    plan = build()
    assert plan.settings['glance_endpoints'] == []
    assert plan.inject('root-fetch')['glance'] == {
        'api_servers': [], 'num_retries': 3, 'insecure': False,
        'download_retries': 3}
    plan = build(glance={'api_servers': 'https://g1:9292,http://g2/image'},
                 imagepipe={'download_retries': 0})
    assert plan.settings['glance_endpoints'] == [
        'https://g1:9292', 'http://g2/image']
    assert plan.inject('root-fetch')['glance']['download_retries'] == 0


# -- options (reference section 1) -------------------------------------------

@pytest.fixture
def conf_file(tmp_path):
    def write(text):
        path = tmp_path / 'nova.conf'
        path.write_text(f'[DEFAULT]\nstate_path = {tmp_path}/state\n{text}')
        return str(path)
    return write


def cli(capsys, *argv):
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_gazpacho_is_the_newest_release():
    assert releases.newest() == 'gazpacho'
    assert list(flows.registered())[-1] == 'gazpacho'
    assert loader.load([]).release == 'gazpacho'
    release = flows.get('gazpacho')
    assert (release.nova_tag, release.date) == ('33.0.2', '2026-06-16')


def test_plan_defaults_to_gazpacho(capsys, conf_file, tmp_path):
    code, out, err = cli(capsys, '--config-file', conf_file(''), 'plan',
                         '--image', IMAGE, '--instance', INSTANCE)
    assert (code, err) == (0, '')
    assert out.splitlines()[0] == (
        f'gazpacho: images type qcow2, force_raw_images=True, image {IMAGE}')
    code, out, err = cli(capsys, '--config-file', conf_file(''), 'plan',
                         '--image', IMAGE, '--instance', INSTANCE,
                         '--format', 'dot')
    assert (code, err) == (0, '')
    assert '"root-check-size==1.0" -> "root-recheck-base==1.0"' in out
    assert not (tmp_path / 'state').exists()


@pytest.mark.parametrize('text,needle,accepted', [
    ('[libvirt]\nimages_type = floppy\n', "'floppy' for [libvirt] images_type",
     'raw, flat, qcow2, lvm, rbd, ploop, default'),
    ('[DEFAULT]\npreallocate_images = full\n',
     "'full' for [DEFAULT] preallocate_images", 'none, space'),
    ('[libvirt]\nvolume_clear = burn\n', "'burn' for [libvirt] volume_clear",
     'none, zero, shred'),
    ('[workarounds]\ndisable_deep_image_inspection = maybe\n',
     "'maybe' for [workarounds] disable_deep_image_inspection",
     'true or false'),
])
def test_invalid_values_exit_2_in_one_line(capsys, conf_file, text, needle,
                                           accepted):
    path = conf_file(text)
    with pytest.raises(exception.ConfigError) as e:
        conf_settings.snapshot(loader.load([path], release='gazpacho'))
    assert needle in str(e.value) and accepted in str(e.value)
    code, out, err = cli(capsys, '--config-file', path, 'plan', '--image',
                         IMAGE, '--instance', INSTANCE)
    assert (code, out) == (2, '')
    assert err.count('\n') == 1 and needle in err and path in err
    assert '(release gazpacho)' in err


def test_preallocate_values_are_free_form_before(conf_file):
    """Juno's Nova took any value (and preallocated with it)."""
    path = conf_file('[DEFAULT]\npreallocate_images = full\n')
    s = conf_settings.snapshot(loader.load([path], release='juno'))
    assert s['preallocate_images'] == 'full'


@pytest.mark.parametrize('images_type', ['rbd', 'ploop'])
@pytest.mark.parametrize('command', ['plan', 'run'])
def test_rbd_and_ploop_accepted_then_refused(capsys, conf_file, tmp_path,
                                              images_type, command):
    path = conf_file(f'[libvirt]\nimages_type = {images_type}\n')
    s = conf_settings.snapshot(loader.load([path], release='gazpacho'))
    assert s['images_type_effective'] == images_type
    code, out, err = cli(capsys, '--config-file', path, command, '--image',
                         IMAGE, '--instance', INSTANCE)
    assert code == 1 and out == ''
    assert err == ('imagepipe: error: images_type '
                   f'{images_type} is not supported by imagepipe\n')
    assert not (tmp_path / 'state').exists()


def test_deprecated_image_cache_name_read(build, conf_file):
    plan = build(image_cache_subdirectory_name='cache')
    assert plan.inject('root-publish')['base'] == (
        f'{plan.instances}/cache/{HEX}')
    path = conf_file('image_cache_subdirectory_name = cache\n')
    rconf = loader.load([path], release='gazpacho')
    assert rconf.value('image_cache_subdirectory_name') == 'cache'
    assert rconf.source('image_cache_subdirectory_name') == (
        f'{path} [DEFAULT] image_cache_subdirectory_name (deprecated name)')
    assert rconf.warnings == []
    # oslo.config warns once per process, so look at a fresh one
    p = _cli('--config-file', path, 'config', '--format', 'json')
    assert p.returncode == 0, p.stderr
    assert ('Option "image_cache_subdirectory_name" from group "DEFAULT" is '
            'deprecated. Use option "subdirectory_name" from group '
            '"image_cache"') in p.stderr
    rows = {r['option']: r for r in json.loads(p.stdout)}
    assert rows['[image_cache] subdirectory_name']['value'] == 'cache'


def test_new_image_cache_name_wins(build):
    plan = build(image_cache_subdirectory_name='old',
                 image_cache={'subdirectory_name': 'new'})
    assert plan.inject('root-publish')['base'] == (
        f'{plan.instances}/new/{HEX}')


def test_names_gone_by_gazpacho_warn(conf_file):
    path = conf_file('base_dir_name = cache\n[glance]\nhost = g\n'
                     'protocol = https\n')
    rconf = loader.load([path], release='gazpacho')
    assert rconf.value('image_cache_subdirectory_name') == '_base'
    assert len(rconf.warnings) == 3
    assert any('[DEFAULT] base_dir_name' in w and 'ignored' in w
               and 'after icehouse' in w for w in rconf.warnings)
    assert any('[glance] host' in w and 'after juno' in w
               for w in rconf.warnings)
    # Juno still read them
    assert loader.load([path], release='juno').warnings[0].startswith(
        '[DEFAULT] base_dir_name')


def test_locking_and_glance_aliases(conf_file):
    path = conf_file('disable_process_locking = true\n'
                     '[glance]\napi_insecure = true\n')
    rconf = loader.load([path], release='gazpacho')
    assert rconf.value('disable_process_locking') is True
    assert rconf.value('glance_api_insecure') is True
    assert rconf.source('disable_process_locking').endswith(
        '[DEFAULT] disable_process_locking (deprecated name)')
    assert 'glance_num_retries' in [o.key for o in options.for_release(
        'gazpacho')]
    assert rconf.value('glance_num_retries') == 3
    s = conf_settings.snapshot(rconf)
    plan_lock = steps.Build(flows.get('gazpacho'), s, {
        'image': IMAGE, 'instance': INSTANCE}).lock('x', True)
    assert plan_lock['external'] is True


def test_modern_options_exist_only_in_gazpacho():
    for key in ('vmdk_allowed_types', 'disable_deep_image_inspection'):
        assert [r for r in releases.RELEASES
                if options.BY_KEY[key].spelling_in(r)] == ['gazpacho']


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main', *args],
                          capture_output=True, text=True, cwd=ROOT)


# -- real runs on small images -----------------------------------------------

class Site:
    """A nova.conf with state_path in tmp_path, and runs of its flows."""

    def __init__(self, tmp_path, backend):
        self.tmp = tmp_path
        self.state = tmp_path / 'state'
        self.instances = str(self.state / 'instances')
        self.backend = backend

    def kwargs(self, image, root_gb=1, text=''):
        path = self.tmp / 'nova.conf'
        path.write_text(f'[DEFAULT]\nstate_path = {self.state}\n{text}')
        settings = conf_settings.snapshot(
            loader.load([str(path)], release='gazpacho'))
        return {'release': 'gazpacho', 'settings': settings,
                'request': {'image': image, 'instance': INSTANCE,
                            'root_gb': root_gb, 'ephemeral_gb': 0,
                            'swap_mb': 0}}

    def run(self, image, root_gb=1, text=''):
        """Run the flow; (engine, kwargs). Raises what the run raised."""
        kwargs = self.kwargs(image, root_gb, text)
        flow = flows.factory(**kwargs)
        self.engine = engines.load(flow, backend=self.backend,
                                   engine='serial')
        self.engine.run()
        return self.engine, kwargs

    def result(self, step):
        return self.engine.storage.fetch(step)

    def state_of_flow(self):
        return self.engine.storage.get_flow_state()

    @property
    def base_dir(self):
        return os.path.join(self.instances, '_base')

    def base(self, image):
        return os.path.join(self.base_dir,
                            hashlib.sha1(image.encode()).hexdigest())

    def disk(self, name='disk'):
        return os.path.join(self.instances, INSTANCE, name)

    def cache_files(self):
        if not os.path.isdir(self.base_dir):
            return []
        return sorted(os.listdir(self.base_dir))


@pytest.fixture(scope='module')
def backend(tmp_path_factory):
    """One SQLite run database for the module (its schema takes a second)."""
    path = tmp_path_factory.mktemp('runs') / 'runs.sqlite'
    found = backends.fetch({'connection': f'sqlite:///{path}'})
    with contextlib.closing(found.get_connection()) as conn:
        conn.upgrade()
    return found


@pytest.fixture
def site(tmp_path, backend):
    return Site(tmp_path, backend)


@pytest.fixture(scope='module')
def made(tmp_path_factory, qcow2_image):
    """Images built for these runs."""
    d = tmp_path_factory.mktemp('modern-images')
    found = {'qcow2': qcow2_image}
    found['big'] = str(d / 'big.qcow2')        # virtual 2 GiB, a few KiB
    shutil.copy(qcow2_image, found['big'])
    images.sh('qemu-img', 'resize', '-q', '-f', 'qcow2', found['big'], '2G')
    found['backing'] = str(d / 'backing.qcow2')
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', qcow2_image,
              '-F', 'qcow2', found['backing'])
    return found


def fs_blocks(path, tmp_path):
    """Block count of the ext filesystem a disk file holds (any format)."""
    raw = str(tmp_path / 'as-raw')
    images.sh('qemu-img', 'convert', '-O', 'raw', path, raw)
    try:
        return images.fs_block_count(raw)
    finally:
        os.unlink(raw)


@pytest.mark.slow
def test_run_qcow2_default(site, made, tmp_path, raw_image):
    engine, kwargs = site.run(made['qcow2'])
    assert site.state_of_flow() == states.SUCCESS
    base, disk = site.base(made['qcow2']), site.disk()
    assert site.cache_files() == [os.path.basename(base)]   # no .part
    assert images.info(base)['format'] == 'raw'
    info = images.info(disk)
    # born at the flavor size, backing_fmt recorded, nothing resized
    assert info['format'] == 'qcow2'
    assert info['virtual-size'] == GiB
    assert info['backing-filename'] == base
    assert info['backing-filename-format'] == 'raw'
    assert fs_blocks(disk, tmp_path) == images.fs_block_count(raw_image)
    assert site.result('root-overlay')['virtual_size'] == GiB
    assert site.result('root-inspect-base')['inspector'] == 'raw'
    assert site.result('root-recheck-base')['cluster_size'] is None
    assert site.result('root-check-size') == {
        'path': base, 'size': GiB, 'virtual_size': 64 * MiB}
    with open(site.disk('disk.info')) as f:
        assert json.load(f) == {disk: 'qcow2'}


@pytest.mark.slow
def test_run_qcow2_base_keeps_its_cluster_size(site, made):
    site.run(made['qcow2'], text='force_raw_images = false\n')
    base = site.base(made['qcow2'])
    assert images.info(base)['format'] == 'qcow2'
    info = images.info(site.disk())
    assert info['backing-filename-format'] == 'qcow2'
    assert info['cluster-size'] == 65536
    assert info['virtual-size'] == GiB


@pytest.mark.slow
def test_run_flat_grows_the_filesystem(site, made, tmp_path, raw_image):
    site.run(made['qcow2'], text='use_cow_images = false\n')
    assert site.state_of_flow() == states.SUCCESS
    disk = site.disk()
    info = images.info(disk)
    assert (info['format'], info['virtual-size']) == ('raw', GiB)
    assert 'backing-filename' not in info
    before = images.fs_block_count(raw_image)
    block_size = 64 * MiB // before
    assert images.fs_block_count(disk) == GiB // block_size   # grown to 1 GiB
    grown = site.result('root-resize-fs')
    assert grown['grown'] is True and grown['e2fsck_status'] in (0, 1, 2)
    with open(site.disk('disk.info')) as f:
        assert json.load(f) == {disk: 'raw'}


@pytest.mark.slow
@pytest.mark.parametrize('text', ['', 'use_cow_images = false\n'])
def test_run_oversized_image_refused_before_conversion(site, made, text):
    """Not as Nova, which converts first: nothing is left in the cache."""
    with pytest.raises(exception.FlavorDiskTooSmall) as e:
        site.run(made['big'], text=text)
    assert str(e.value).endswith(
        "is unacceptable: Flavor's disk is too small for requested image: "
        'virtual size 2.0 GiB exceeds root disk 1.0 GiB: use --root-gb 2 or '
        'more')
    assert site.state_of_flow() == states.REVERTED
    assert site.cache_files() == []
    assert not os.path.exists(site.disk())
    assert not os.path.exists(site.disk('disk.info'))


@pytest.mark.slow
def test_run_oversized_cached_base_fails_and_stays(site, made):
    """A base cached earlier (by another flavor's run) is kept."""
    os.makedirs(site.base_dir)
    base = site.base(made['big'])
    shutil.copy(made['big'], base)
    with pytest.raises(exception.FlavorDiskTooSmall):
        site.run(made['big'])
    assert site.state_of_flow() == states.REVERTED
    assert site.cache_files() == [os.path.basename(base)]
    assert not os.path.exists(site.disk())


@pytest.mark.slow
def test_run_oversized_on_lvm_stops_before_vgs(site, made, tmp_path,
                                               monkeypatch):
    from tests import standins
    fake = standins.Standins(tmp_path, monkeypatch)
    with pytest.raises(exception.FlavorDiskTooSmall):
        site.run(made['big'], text='[libvirt]\nimages_type = lvm\n'
                 'images_volume_group = vg0\n')
    assert fake.calls() == []        # refused before conversion
    assert site.state_of_flow() == states.REVERTED


@pytest.mark.slow
def test_run_qcow2_with_backing_file_rejected(site, made):
    with pytest.raises(exception.ImageUnacceptable,
                       match=r'Image does not pass safety check '
                             r'\(backing_file\)$'):
        site.run(made['backing'])
    assert site.state_of_flow() == states.REVERTED
    assert site.cache_files() == []
    assert not os.path.exists(site.disk())
    assert not locks.is_held(os.path.basename(site.base(made['backing'])))


@pytest.mark.slow
def test_run_backing_file_rejected_without_deep_inspection(site, made):
    """The workaround drops the inspector, not qemu-img's backing check."""
    with pytest.raises(exception.ImageUnacceptable,
                       match=r'fmt=qcow2 backed by: '):
        site.run(made['backing'],
                 text='[workarounds]\ndisable_deep_image_inspection = true\n')
    assert site.cache_files() == []


@pytest.fixture
def glance(tmp_path, made):
    root = tmp_path / 'glance'
    root.mkdir()
    shutil.copy(made['qcow2'], root / 'img.qcow2')
    with httpserver.Server(root) as server:
        yield server


GLANCE_ID = '4a4d7f8e-1f0b-4c2e-9d7a-0c6e3c1b2a11'


def glance_conf(server, extra=''):
    return f'[glance]\napi_servers = {server.base_url}\n{extra}'


@pytest.mark.slow
def test_run_glance_qcow2_declared_raw_rejected(site, glance):
    glance.add_image(GLANCE_ID, 'img.qcow2', disk_format='raw',
                     size=os.path.getsize(os.path.join(glance.root,
                                                       'img.qcow2')))
    with pytest.raises(exception.ImageUnacceptable) as e:
        site.run(GLANCE_ID, text=glance_conf(glance))
    assert str(e.value).endswith(
        'Image not in a supported format: content is qcow2 but the '
        'disk_format is raw')
    assert site.cache_files() == []


@pytest.mark.slow
def test_run_glance_declared_qcow2_accepted(site, glance):
    glance.add_image(GLANCE_ID, 'img.qcow2', disk_format='qcow2')
    site.run(GLANCE_ID, text=glance_conf(glance))
    assert site.state_of_flow() == states.SUCCESS
    assert site.result('root-fetch')['disk_format'] == 'qcow2'
    assert images.info(site.disk())['virtual-size'] == GiB


@pytest.mark.slow
def test_run_glance_mismatch_passes_with_the_workaround(site, glance):
    """Nova 29.0.0 behaviour: qemu-img's probe decides, the lie goes by."""
    glance.add_image(GLANCE_ID, 'img.qcow2', disk_format='raw')
    site.run(GLANCE_ID, text=glance_conf(
        glance, '[workarounds]\ndisable_deep_image_inspection = true\n'))
    assert site.state_of_flow() == states.SUCCESS
    assert site.result('root-inspect')['format'] == 'qcow2'
    assert 'root-inspect-base' not in site.engine.storage.fetch_all()


@pytest.mark.slow
def test_run_unsafe_cached_base_is_invalid_disk_info(site, made):
    """A base cached by an older Nova is inspected again before use (Q2)."""
    os.makedirs(site.base_dir)
    shutil.copy(made['backing'], site.base(made['qcow2']))
    with pytest.raises(recheck.InvalidDiskInfo,
                       match='Disk info file is invalid: Base image failed '
                             r'safety check: .* \(backing_file\)'):
        site.run(made['qcow2'])
    # nothing downloaded; the base is never removed by a failure
    assert site.cache_files() == [os.path.basename(site.base(made['qcow2']))]
    assert not os.path.exists(site.disk())
