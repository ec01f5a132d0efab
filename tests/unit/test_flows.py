"""Release flows against the article's tables and nova-reference.md.

Every flow is built the way ``imagepipe plan`` builds it: nova.conf files
written here, read by the release's loader, snapshotted, then
``flows.factory``. The golden tests compare the ordered commands of the plan
(each step's argv, in order) with the rows of the article's tables, written
in the reference's notation: ``$B`` the image cache, ``$hex`` the cache name
of the image, ``$D`` the instance directory, ``$I`` instances_path. Nothing
runs: a plan touches no disk and needs no tool.
"""

import json

import pytest

from imagepipe import exception
from imagepipe import flows
from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import settings as conf_settings
from imagepipe.flows import article
from imagepipe.flows import deviations
from imagepipe.runner import store
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
S10 = str(10 * GiB)

RELEASES = ('essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno')



@pytest.fixture
def build(tmp_path):
    """build(release, root_gb=10, ..., libvirt={...}, **DEFAULT options)."""
    instances = str(tmp_path / 'instances')

    def build(release, root_gb=10, ephemeral_gb=0, swap_mb=0,
              instance=INSTANCE, libvirt=None, **default):
        lines = ['[DEFAULT]', f'instances_path = {instances}']
        lines += [f'{k} = {v}' for k, v in default.items()]
        lines += ['[libvirt]'] + [f'{k} = {v}'
                                  for k, v in (libvirt or {}).items()]
        path = tmp_path / 'nova.conf'
        path.write_text('\n'.join(lines) + '\n')
        settings = conf_settings.snapshot(
            loader.load([str(path)], release=release))
        kwargs = {'release': release, 'settings': settings,
                  'request': {'image': IMAGE, 'instance': instance,
                              'root_gb': root_gb,
                              'ephemeral_gb': ephemeral_gb,
                              'swap_mb': swap_mb}}
        return Plan(flows.factory(**kwargs), kwargs, instances)
    return build


def command_lines(plan):
    """Every command of the plan, one string each, in order."""
    return [c for _, commands in plan.commands() for c in commands]


def fallocates(plan):
    """The plan's fallocate commands (preallocation, or its probe)."""
    return [c for c in command_lines(plan) if 'fallocate' in c]


def lvm(release, vg='vg'):
    """The options that select LVM in ``release``."""
    if release in ('icehouse', 'juno'):
        return {'libvirt': {'images_type': 'lvm', 'images_volume_group': vg}}
    return {'libvirt_images_type': 'lvm', 'libvirt_images_volume_group': vg}


# -- the rows of the article's tables ----------------------------------------

INTAKE_RAW = [FETCH, INSPECT, CONVERT, PUBLISH]          # force_raw True
INTAKE_KEPT = [FETCH, INSPECT, ('root-convert', []), PUBLISH]

# cp $hex $hex_$size; qemu-img resize $hex_$size $size; resize2fs $hex_size
RESIZED_BASE = [
    ('root-copy-base',
     ['cp --sparse=always --reflink=auto $B/$hex $B/$hex_10.tmp']),
    # grown under the temporary name: the entry appears whole (imagepipe)
    ('root-resize-base', [f'qemu-img resize -f raw $B/$hex_10.tmp {S10}']),
    ('root-resize-fs-base', ['e2fsck -fp $B/$hex_10.tmp',
                             'resize2fs $B/$hex_10.tmp']),
]
# cp $hex $instance_dir/disk; qemu-img resize disk; resize2fs disk
COPY = ('root-copy', ['cp --sparse=always --reflink=auto $B/$hex $D/disk.tmp'])
FS_DISK = ('root-resize-fs', ['e2fsck -fp $D/disk', 'resize2fs $D/disk'])

FOLSOM_TABLES = {
    # force_raw_images, use_cow_images: CoW backed by a resized raw image
    (True, True): INTAKE_RAW + RESIZED_BASE + [
        ('root-overlay', ['qemu-img create -f qcow2 -o '
                          'backing_file=$B/$hex_10,backing_fmt=raw '
                          '$D/disk.tmp'])],
    # a copy of a resized raw image
    (True, False): INTAKE_RAW + [
        COPY, ('root-resize', [f'qemu-img resize -f raw $D/disk {S10}']),
        FS_DISK],
    # a copy of a resized qcow2 image (resize2fs ignored for qcow2)
    (False, False): INTAKE_KEPT + [
        COPY,
        ('root-resize', [f'qemu-img resize -f <probed format> $D/disk '
                         f'{S10}']),
        FS_DISK],
    # CoW backed by a resized qcow2 image (resize2fs ignored for qcow2)
    (False, True): INTAKE_KEPT + [
        ('root-copy-base',
         ['cp --sparse=always --reflink=auto $B/$hex $B/$hex_10.tmp']),
        ('root-resize-base',
         [f'qemu-img resize -f <probed format> $B/$hex_10.tmp {S10}']),
        ('root-resize-fs-base',
         ['e2fsck -fp $B/$hex_10.tmp', 'resize2fs $B/$hex_10.tmp']),
        ('root-overlay', ['qemu-img create -f qcow2 -o '
                          'backing_file=$B/$hex_10,backing_fmt=<probed '
                          'format> $D/disk.tmp'])],
}

# Grizzly+: qemu-img create -f qcow2 -o backing_file=... $instance_dir/disk,
# then qemu-img resize disk $size in the instance directory
OVERLAY_INHERIT = ('root-overlay', [
    'qemu-img create -f qcow2 -o backing_file=$B/$hex,backing_fmt=raw,'
    'cluster_size=<cluster size of the base> $D/disk.tmp'])
RESIZE_OVERLAY = ('root-resize', [f'qemu-img resize -f qcow2 $D/disk {S10}'])

GRIZZLY_DEFAULT = INTAKE_RAW + [OVERLAY_INHERIT, RESIZE_OVERLAY, FS_DISK]
GRIZZLY_SPACE = GRIZZLY_DEFAULT + [
    ('root-preallocate', ['fallocate -l 1 $D/disk.fallocate_test',
                          f'fallocate -n -l {S10} $D/disk'])]
HAVANA_DEFAULT = INTAKE_RAW + [('root-disk-info', []), OVERLAY_INHERIT,
                               RESIZE_OVERLAY]
HAVANA_NBD = HAVANA_DEFAULT + [('root-resize-fs', [
    'qemu-nbd -c /dev/<free nbdN> $D/disk', 'e2fsck -fp /dev/<free nbdN>',
    'resize2fs /dev/<free nbdN>', 'qemu-nbd -d /dev/<free nbdN>'])]


@pytest.mark.parametrize('force_raw,use_cow', list(FOLSOM_TABLES))
def test_folsom_tables(build, force_raw, use_cow):
    plan = build('folsom', force_raw_images=force_raw,
                 use_cow_images=use_cow)
    assert plan.commands() == FOLSOM_TABLES[force_raw, use_cow] + [VERIFY]


def test_grizzly_defaults_table(build):
    assert build('grizzly').commands() == GRIZZLY_DEFAULT + [VERIFY]


def test_grizzly_preallocate_space_table(build):
    assert build('grizzly', preallocate_images='space').commands() == (
        GRIZZLY_SPACE + [VERIFY])


def test_havana_resize_fs_using_block_device_off(build):
    plan = build('havana')
    assert plan.commands() == HAVANA_DEFAULT + [VERIFY]
    # no e2fsck/resize2fs on the qcow2 file: growth only through nbd
    assert 'root-resize-fs' not in plan.names()


def test_havana_resize_fs_using_block_device_on(build):
    plan = build('havana', resize_fs_using_block_device=True)
    assert plan.commands() == HAVANA_NBD + [VERIFY]
    assert plan.inject('root-resize-fs')['strict'] is False


def test_essex_default(build):
    # use_cow_images=True: the Folsom qcow2 table, Essex's own code path
    assert build('essex').commands() == FOLSOM_TABLES[True, True] + [VERIFY]


def test_essex_without_cow_copies(build):
    assert build('essex', use_cow_images=False).commands() == (
        FOLSOM_TABLES[True, False] + [VERIFY])


@pytest.mark.parametrize('release', ['icehouse', 'juno'])
def test_icehouse_juno_default(build, release):
    plan = build(release)
    assert plan.commands() == HAVANA_DEFAULT + [VERIFY]
    assert plan.inject('root-disk-info')['atomic'] is (release == 'juno')


@pytest.mark.parametrize('release', ['icehouse', 'juno'])
def test_icehouse_juno_nbd_strict(build, release):
    plan = build(release, resize_fs_using_block_device=True)
    assert plan.commands() == HAVANA_NBD + [VERIFY]
    assert plan.inject('root-resize-fs')['strict'] is True


# -- LVM (reference section 5) -----------------------------------------------

LVCREATE = ('lvcreate -L <larger of 10737418240 and virtual_size of '
            'root-inspect>b -n vm1_disk vg')
LV = '/dev/vg/vm1_disk'
LVM_FOLSOM = INTAKE_RAW + [
    ('root-create-volume',
     ['vgs --noheadings --nosuffix --units b -o vg_free vg', LVCREATE]),
    ('root-write-volume', [f'dd if=$B/$hex of={LV} bs=4M']),
    ('root-resize-fs', [f'e2fsck -fp {LV}', f'resize2fs {LV}']),
]
LVM_CONVERT = INTAKE_RAW + [
    ('root-create-volume',
     ['vgs --noheadings --nosuffix --separator | --units b '
      '-o vg_size,vg_free vg', LVCREATE]),
    ('root-write-volume',
     [f'qemu-img convert -t none -O raw -f raw $B/$hex {LV}']),
    ('root-resize-fs', [f'e2fsck -fp {LV}', f'resize2fs {LV}']),
]


@pytest.mark.parametrize('release,expected,lock,variant', [
    ('folsom', LVM_FOLSOM, '$B/$hex', 'blind'),
    ('grizzly', LVM_CONVERT, '$B/$hex', 'blind'),
    ('havana', LVM_CONVERT, '$B/$hex', 'blind'),
    ('icehouse', LVM_CONVERT, '$hex', 'device'),
    ('juno', LVM_CONVERT, '$B/$hex', 'device'),
])
def test_lvm_flow(build, release, expected, lock, variant):
    plan = build(release, **lvm(release))
    assert plan.commands() == expected + [VERIFY]
    for name in ('root-create-volume', 'root-write-volume',
                 'root-resize-fs'):
        assert plan.lock(name) == lock, name
    # Grizzly/Havana ran e2fsck/resize2fs as root ignoring exit codes;
    # Icehouse+ required e2fsck 0-2 (and Folsom ran them as the nova user)
    assert plan.inject('root-resize-fs')['variant'] == variant
    root_note = deviations.note('lvm-resize-root')
    assert (root_note in plan.notes('root-resize-fs')) is (
        release == 'folsom')
    assert plan.inject('root-create-volume')['check_size'] is (
        release != 'folsom')
    assert plan.warnings() == []


def test_lvm_name_doubles_underscores(build):
    plan = build('grizzly', instance='vm_1', **lvm('grizzly', 'nova_vg'))
    inject = plan.inject('root-create-volume')
    assert inject['lv'] == 'vm__1_disk'
    assert inject['device'] == '/dev/nova_vg/vm__1_disk'


def test_lvm_volume_clear_only_from_icehouse(build):
    plan = build('icehouse', libvirt={
        'images_type': 'lvm', 'images_volume_group': 'vg',
        'volume_clear': 'shred', 'volume_clear_size': 10})
    assert plan.inject('root-create-volume')['volume_clear'] == 'shred'
    assert plan.inject('root-create-volume')['volume_clear_size'] == 10
    assert build('havana', **lvm('havana')).inject(
        'root-create-volume')['volume_clear'] == 'zero'


def test_ephemeral_on_lvm_not_supported(build):
    with pytest.raises(exception.NotSupported):
        build('grizzly', ephemeral_gb=1, **lvm('grizzly'))


# -- locks (reference 2.1) ---------------------------------------------------

@pytest.mark.parametrize('release,copy_lock', [
    ('essex', '$B/$hex'), ('folsom', '$B/$hex'), ('grizzly', '$B/$hex'),
    ('havana', '$B/$hex'), ('icehouse', '$hex'), ('juno', '$hex')])
@pytest.mark.parametrize('use_cow', [True, False])
def test_lock_names(build, release, copy_lock, use_cow):
    plan = build(release, use_cow_images=use_cow)
    for name in ('root-fetch', 'root-inspect', 'root-convert',
                 'root-publish'):
        assert plan.lock(name) == '$hex'
    copy_steps = [s['name'] for s in plan.steps
                  if s['name'] not in ('root-fetch', 'root-inspect',
                                       'root-convert', 'root-publish')
                  and s['lock']]
    assert copy_steps
    assert {plan.lock(name) for name in copy_steps} == {copy_lock}
    # the lock file Nova named: lock dir $I/locks
    assert plan.inject('root-fetch')['lock']['path'] == (
        f'{plan.instances}/locks')


def test_lock_sections_end_once(build):
    plan = build('folsom')
    last = [a.name for a in plan.flow
            if (a.inject.get('lock') or {}).get('last')]
    assert last == ['root-publish', 'root-overlay']


def test_icehouse_fetch_lock_check_and_essex_semaphores(build):
    icehouse = deviations.note('fetch-lock-check')
    essex = deviations.note('essex-locks')
    for release in RELEASES:
        notes = build(release).notes('root-fetch')
        assert (icehouse in notes) is (release == 'icehouse'), release
        assert (essex in notes) is (release == 'essex'), release


@pytest.mark.parametrize('release', RELEASES + ('gazpacho',))
def test_fetch_stops_early_where_the_size_is_checked(build, release):
    """The fetch is given the inspection's limit, with the note, exactly
    where the release compares the image with the flavor (Grizzly on, and
    gazpacho's check before converting)."""
    plan = build(release)
    limit = plan.inject('root-inspect')['max_size']
    assert limit == (None if release in ('essex', 'folsom') else 10 * GiB)
    assert plan.inject('root-fetch').get('max_size') == limit
    note = deviations.note('header-size')
    assert (note in plan.notes('root-fetch')) is bool(limit)


def test_disable_process_locking(build):
    plan = build('juno', disable_process_locking=True)
    assert plan.inject('root-fetch')['lock']['external'] is True


# -- cache, sizes, file names (reference 2.2, 2.6, 3.x) ----------------------

@pytest.mark.parametrize('release,option,expected', [
    ('essex', {'base_dir_name': 'cache'}, 'cache'),     # 2012.1.1+
    ('folsom', {'base_dir_name': 'cache'}, '_base'),    # LP#1083447
    ('grizzly', {'base_dir_name': 'cache'}, 'cache'),
    ('havana', {'base_dir_name': 'cache'}, 'cache'),
    ('icehouse', {'base_dir_name': 'cache'}, 'cache'),  # deprecated name
    ('icehouse', {'image_cache_subdirectory_name': 'cache'}, 'cache'),
    ('juno', {'image_cache_subdirectory_name': 'cache'}, 'cache'),
])
def test_image_cache_directory(build, release, option, expected):
    plan = build(release, **option)
    assert plan.inject('root-publish')['base'] == (
        f'{plan.instances}/{expected}/{HEX}')


@pytest.mark.parametrize('release', ['essex', 'folsom'])
def test_resized_base_only_for_qcow2_with_a_size(build, release):
    assert dict(build(release).commands())['root-copy-base'] == (
        RESIZED_BASE[0][1])
    no_size = build(release, root_gb=0)
    assert not [c for c in command_lines(no_size) if '_10' in c]
    assert no_size.commands()[-2] == ('root-overlay', [
        'qemu-img create -f qcow2 -o backing_file=$B/$hex,backing_fmt=raw '
        '$D/disk.tmp'])
    raw = build(release, use_cow_images=False)
    assert not [c for c in command_lines(raw) if '_10' in c]
    raw_no_size = build(release, use_cow_images=False, root_gb=0)
    assert raw_no_size.commands()[-2:] == [COPY, VERIFY]


@pytest.mark.parametrize('release', RELEASES[2:])
def test_no_resized_base_from_grizzly(build, release):
    plan = build(release)
    assert not [c for c in command_lines(plan) if '_10' in c]
    assert not [c for c in command_lines(build(release, root_gb=0))
                if c.startswith('qemu-img resize')]


@pytest.mark.parametrize('release,checked', [
    ('essex', False), ('folsom', False), ('grizzly', True),
    ('havana', True), ('icehouse', True), ('juno', True)])
def test_max_size_checked_from_grizzly(build, release, checked):
    plan = build(release)
    assert plan.inject('root-inspect')['max_size'] == (
        10 * GiB if checked else None)
    # root_gb 0 is exempt everywhere ("a feature, not a bug")
    assert build(release, root_gb=0).inject('root-inspect')['max_size'] is (
        None)


@pytest.mark.parametrize('release,variant', [
    ('essex', 'blind'), ('folsom', 'blind'), ('grizzly', 'blind'),
    ('havana', 'checked'), ('icehouse', 'strict'), ('juno', 'strict')])
def test_raw_fs_resize_variant(build, release, variant):
    plan = build(release, use_cow_images=False)
    assert plan.inject('root-resize-fs')['variant'] == variant
    gate = ['e2label $D/disk'] if variant != 'blind' else []   # Havana+
    assert dict(plan.commands())['root-resize-fs'] == gate + [
        'e2fsck -fp $D/disk', 'resize2fs $D/disk']


@pytest.mark.parametrize('release', RELEASES)
def test_disk_info(build, release):
    recorded = release in ('havana', 'icehouse', 'juno')
    qcow2 = build(release, ephemeral_gb=1, swap_mb=64)
    raw = build(release, use_cow_images=False, ephemeral_gb=1, swap_mb=64,
                preallocate_images='space')
    for plan in (qcow2, raw):
        assert any(n.endswith('disk-info') for n in plan.names()) is recorded
    if not recorded:
        return
    names = qcow2.names()
    # Qcow2 recorded qcow2 in its constructor, before the overlay existed
    for kind, disk in (('root', 'disk'), ('ephemeral', 'disk.local'),
                       ('swap', 'disk.swap')):
        info = qcow2.inject(f'{kind}-disk-info')
        assert info['info'] == f'{qcow2.instances}/{INSTANCE}/disk.info'
        assert info['disk'] == f'{qcow2.instances}/{INSTANCE}/{disk}'
        assert info['format'] == 'qcow2'
        assert qcow2.lock(f'{kind}-disk-info') is None
    assert names.index('root-disk-info') < names.index('root-overlay')
    assert names.index('ephemeral-disk-info') < names.index(
        'ephemeral-create-base')
    # Raw probed and recorded once the disk existed, before fallocate
    names = raw.names()
    assert names[names.index('root-resize-fs') + 1:][:2] == [
        'root-disk-info', 'root-preallocate']
    assert names[names.index('swap-create') + 1:] == [
        'swap-disk-info', 'swap-preallocate', 'verify']
    assert raw.inject('root-disk-info')['format'] is None
    assert 'root-disk-info' not in build(release, **lvm(release)).names()


# -- ephemeral and swap (reference 2.6, 3.7) ---------------------------------

def test_ephemeral_and_swap_folsom_qcow2(build):
    plan = build('folsom', ephemeral_gb=2, swap_mb=512)
    assert plan.commands()[-5:-1] == [
        ('ephemeral-create-base', [
            'qemu-img create -f raw $B/ephemeral_0_2_None.tmp 2G',
            'mkfs.ext3 -F -L ephemeral0 $B/ephemeral_0_2_None.tmp']),
        ('ephemeral-overlay', [
            'qemu-img create -f qcow2 -o backing_file=$B/ephemeral_0_2_None,'
            'backing_fmt=raw $D/disk.local.tmp']),
        ('swap-create-base', ['qemu-img create -f raw $B/swap_512.tmp 512M',
                              'mkswap $B/swap_512.tmp']),
        ('swap-overlay', [
            'qemu-img create -f qcow2 -o backing_file=$B/swap_512,'
            'backing_fmt=raw $D/disk.swap.tmp']),
    ]
    assert plan.lock('ephemeral-create-base') == 'ephemeral_0_2_None'
    assert plan.lock('ephemeral-overlay') == '$B/ephemeral_0_2_None'
    # Folsom's <name>_<GiB> copies of generated bases are not reproduced
    for name in ('ephemeral-overlay', 'swap-overlay'):
        assert deviations.note('ephemeral-resized') in plan.notes(name)


def test_ephemeral_and_swap_essex_without_cow_in_place(build):
    plan = build('essex', use_cow_images=False, ephemeral_gb=2, swap_mb=512)
    assert plan.commands()[-3:-1] == [
        ('ephemeral-create', [
            'qemu-img create -f raw $D/disk.local.tmp 2G',
            'mkfs.ext3 -F -L ephemeral0 $D/disk.local.tmp']),
        ('swap-create', ['qemu-img create -f raw $D/disk.swap.tmp 512M',
                         'mkswap $D/disk.swap.tmp']),
    ]
    assert plan.lock('ephemeral-create') == 'ephemeral_0_2_None'


@pytest.mark.parametrize('release,name,mkfs,lock', [
    ('grizzly', 'ephemeral_2_default', 'mkfs.ext3', '$B/ephemeral_2_default'),
    ('havana', 'ephemeral_2_default', 'mkfs.ext3', '$B/ephemeral_2_default'),
    ('icehouse', 'ephemeral_2_default', 'mkfs -t ext3',
     'ephemeral_2_default'),
    ('juno', 'ephemeral_2_default', 'mkfs -t ext3', 'ephemeral_2_default'),
])
def test_ephemeral_names_and_mkfs(build, release, name, mkfs, lock):
    plan = build(release, ephemeral_gb=2, preallocate_images='space')
    assert dict(plan.commands())['ephemeral-create-base'] == [
        f'qemu-img create -f raw $B/{name}.tmp 2G',
        f'{mkfs} -F -L ephemeral0 $B/{name}.tmp']
    assert plan.lock('ephemeral-create-base') == name
    assert plan.lock('ephemeral-overlay') == lock
    assert deviations.note('ephemeral-resized') not in plan.notes(
        'ephemeral-overlay')


@pytest.mark.parametrize('use_cow', [True, False])
def test_preallocation_of_ephemeral_and_swap(build, use_cow):
    plan = build('grizzly', use_cow_images=use_cow, ephemeral_gb=2,
                 swap_mb=512, preallocate_images='space')
    commands = dict(plan.commands())
    disk = '$D/disk.local'
    assert commands['ephemeral-preallocate'][-1] == (
        f'fallocate -n -l {2 * GiB} {disk}')
    assert commands['swap-preallocate'][-1] == (
        f'fallocate -n -l {512 * 1024 ** 2} $D/disk.swap')
    assert plan.names()[-2:] == ['swap-preallocate', 'verify']


@pytest.mark.parametrize('value,enabled', [
    ('none', False), ('space', True), ('anything', True)])
def test_preallocate_any_value_but_none(build, value, enabled):
    plan = build('havana', preallocate_images=value)
    assert fallocates(plan) == (GRIZZLY_SPACE[-1][1] if enabled else [])
    assert not fallocates(build('havana', preallocate_images=value,
                                root_gb=0))
    if enabled:
        assert plan.lock('root-preallocate') is None   # outside the lock


@pytest.mark.parametrize('release', ['essex', 'folsom'])
def test_no_preallocation_before_grizzly(build, release):
    plan = build(release, ephemeral_gb=1, swap_mb=64,
                 preallocate_images='space')
    assert fallocates(plan) == []


def test_lvm_never_preallocates(build):
    plan = build('juno', preallocate_images='space', **lvm('juno'))
    assert fallocates(plan) == []


# -- notes: the article versus the code (reference 7), deviations ------------

def test_article_notes(build):
    convert = article.note('convert-order')
    e2fsck = article.note('e2fsck-first')
    folsom = build('folsom')
    # .part removed before the raw check (article: mv, then rm)
    assert convert in folsom.notes('root-convert')
    assert convert not in build('folsom', force_raw_images=False).notes(
        'root-convert')
    # e2fsck -fp runs before resize2fs
    assert e2fsck in folsom.notes('root-resize-fs-base')
    assert article.note('resized-base') in folsom.notes('root-copy-base')
    assert e2fsck in build('folsom', use_cow_images=False).notes(
        'root-resize-fs')
    assert e2fsck in build('havana', resize_fs_using_block_device=True).notes(
        'root-resize-fs')
    # Grizzly: e2fsck/resize2fs on the qcow2 overlay fail silently
    grizzly = build('grizzly', preallocate_images='space')
    assert article.note('overlay-fs') in grizzly.notes('root-resize-fs')
    assert grizzly.inject('root-resize-fs')['variant'] == 'blind'
    assert article.note('preallocate') in grizzly.notes('root-preallocate')


@pytest.mark.parametrize('release', RELEASES)
def test_overlays_get_backing_fmt(build, release):
    plan = build(release, ephemeral_gb=1, swap_mb=64)
    overlays = [n for n in plan.names() if n.endswith('overlay')]
    assert len(overlays) == 3
    for name in overlays:
        notes = plan.notes(name)
        assert sum('backing_fmt' in n for n in notes) == 1, notes
        command = plan.by_name[name]['command']
        assert 'backing_fmt=' in command[command.index('-o') + 1]


def _exists(release, conf):
    """Every [DEFAULT] option of ``conf`` is read by ``release``."""
    names = {o.spelling_in(release).name
             for o in options.for_release(release)}
    return all(key == 'libvirt' or key in names for key in conf)


CONFIGS = [
    (release, conf) for release in RELEASES for conf in (
        {}, {'use_cow_images': False}, {'force_raw_images': False},
        {'preallocate_images': 'space'},
        {'resize_fs_using_block_device': True}, lvm(release))
    if _exists(release, conf)
]


@pytest.mark.parametrize('release,conf', CONFIGS)
def test_no_note_said_twice(build, release, conf):
    """A step never says a note twice."""
    on_lvm = 'lvm' in json.dumps(conf)
    plan = build(release, ephemeral_gb=0 if on_lvm else 1, **conf)
    for step in plan.steps:
        notes = step['notes']
        assert len(notes) == len(set(notes)), step['name']
        if step['source'].startswith('disk.api.extend ('):   # nbd
            assert deviations.note('vfs-probe') not in notes


def test_vfs_probe_noted_where_nova_mounted_for_nothing(build):
    # resize_fs_using_block_device off: Nova still test-mounted the overlay
    for release in ('havana', 'icehouse', 'juno'):
        assert deviations.note('vfs-probe') in build(release).notes(
            'root-resize')
    assert deviations.note('vfs-probe') not in build('grizzly').notes(
        'root-resize')


def test_essex_partial_files_noted(build):
    note = deviations.note('partial-copy')
    assert note in build('essex').notes('root-copy-base')
    assert note in build('essex', use_cow_images=False).notes('root-copy')
    assert note not in build('folsom').notes('root-copy-base')
    assert note not in build('folsom', use_cow_images=False).notes(
        'root-copy')


# -- the wrong disk format warning (LP#1163009, LP#1075333) ------------------

@pytest.mark.parametrize('release,conf,bug', [
    ('essex', {'use_cow_images': False}, 'LP#1163009'),
    ('folsom', {'use_cow_images': False}, 'LP#1163009'),
    ('folsom', {'libvirt_images_type': 'raw'}, 'LP#1163009'),
    ('folsom', lvm('folsom'), 'LP#1075333'),
    ('essex', {}, None),                      # qcow2 overlay: said qcow2
    ('folsom', {}, None),
    ('grizzly', {'use_cow_images': False}, None),   # probed (2013.1.1)
    ('grizzly', lvm('grizzly'), None),              # qemu-img convert
    ('havana', {'use_cow_images': False}, None),
    ('juno', {'use_cow_images': False}, None),
])
def test_declared_raw_warning(build, release, conf, bug):
    plan = build(release, force_raw_images=False, **conf)
    warnings = plan.warnings()
    if bug is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and bug in warnings[0]
        assert 'force_raw_images=False' in warnings[0]
    # with force_raw_images (the default) the disk is raw: nothing to say
    assert build(release, **conf).warnings() == []


def test_warning_rule_is_data():
    assert flows.get('essex').traits.declared_raw == (
        ('raw', 'LP#1163009'),)
    assert {b for b, _ in flows.get('folsom').traits.declared_raw} == {
        'raw', 'lvm'}
    for name in RELEASES[2:]:
        assert flows.get(name).traits.declared_raw == ()


# -- the factory: JSON in, the same graph out (resume safety) ----------------

@pytest.mark.parametrize('release', RELEASES)
def test_same_kwargs_same_graph(build, release):
    first = build(release, ephemeral_gb=1, swap_mb=64)
    kwargs = json.loads(json.dumps(first.kwargs))   # as stored with a run
    assert kwargs == first.kwargs
    again = flows.factory(**kwargs)
    assert [a.name for a in again] == first.names()
    assert store.fingerprint(again) == store.fingerprint(first.flow)
    assert [a.inject for a in again] == [a.inject for a in first.flow]


@pytest.mark.parametrize('release,a,b', [
    ('grizzly', {}, {'preallocate_images': 'space'}),
    ('havana', {}, {'resize_fs_using_block_device': True}),
    ('folsom', {}, {'use_cow_images': False}),
    ('juno', {}, lvm('juno')),
])
def test_graph_changing_settings_change_the_fingerprint(build, release, a,
                                                        b):
    assert store.fingerprint(build(release, **a).flow) != store.fingerprint(
        build(release, **b).flow)


def test_root_gb_zero_changes_the_fingerprint(build):
    assert store.fingerprint(build('folsom').flow) != store.fingerprint(
        build('folsom', root_gb=0).flow)


# -- the registry ------------------------------------------------------------

def test_registered_releases_oldest_first():
    # today's Nova comes last (its own tests: test_modern.py)
    assert list(flows.registered()) == list(RELEASES) + ['gazpacho']


def test_unknown_release_is_a_config_error():
    with pytest.raises(exception.ConfigError, match='essex, folsom'):
        flows.get('kilo')


def test_essex_has_no_lvm(build):
    settings = build('essex').kwargs['settings']
    settings = {**settings, 'images_type_effective': 'lvm',
                'images_volume_group': 'vg'}
    with pytest.raises(exception.NotSupported):
        flows.factory(release='essex', settings=settings,
                      request={'image': IMAGE, 'instance': INSTANCE,
                               'root_gb': 1})
