"""The building blocks every release flow is made of, chosen by traits.

Reference: nova-reference.md section 3 (root disk), 3.7 (ephemeral and swap),
section 5 (LVM); nova-modern.md section 2 for today's Nova. Steps taken under
one of Nova's locks form a section: the first task takes the lock, the last
one releases it (imagepipe.tasks.locks).

A step's notes come from its task; the blocks add only what the task cannot
know: where imagepipe departs from the release (:mod:`deviations`) and where
the article's tables simplify Nova's code (:mod:`article`).
"""

import os

from taskflow.patterns import linear_flow

from imagepipe import exception
from imagepipe.flows import article
from imagepipe.flows import deviations
from imagepipe.flows import paths as flow_paths
from imagepipe.tasks import convert
from imagepipe.tasks import copy
from imagepipe.tasks import diskinfo
from imagepipe.tasks import fetch
from imagepipe.tasks import generate
from imagepipe.tasks import inspect
from imagepipe.tasks import lvm
from imagepipe.tasks import nbd
from imagepipe.tasks import overlay
from imagepipe.tasks import preallocate
from imagepipe.tasks import publish
from imagepipe.tasks import resize
from imagepipe.tasks import verify

GiB = flow_paths.GiB
MiB = 1024 ** 2


class Step:
    """One task to build: class, name, inject, wire, extra notes."""

    def __init__(self, cls, name, inject, wire=None, notes=()):
        self.cls, self.name, self.inject = cls, name, inject
        self.wire, self.notes = wire, notes

    def task(self, lock=None):
        inject = dict(self.inject)
        if lock is not None:
            inject['lock'] = lock
        return self.cls(self.name, inject=inject, wire=self.wire,
                        notes=self.notes)

    def unlocked(self):
        """The task of a step that takes a ``lock`` but runs outside one."""
        return self.cls(self.name, inject={**self.inject, 'lock': None},
                        wire=self.wire, notes=self.notes)


class Context:
    """Everything a block needs: release traits, settings, paths, sizes."""

    def __init__(self, release, settings, request):
        self.release = release
        self.traits = t = release.traits
        self.settings = settings
        self.request = request
        base_dir_name = (settings['image_cache_subdirectory_name']
                         if t.base_dir_option else '_base')
        self.paths = flow_paths.Paths(settings, request, base_dir_name)
        self.size = (request.get('root_gb') or 0) * GiB or None
        self.backend = settings['images_type_effective']
        #: format of the base once published; None: known only at run time
        self.base_format = 'raw' if settings['force_raw_images'] else None
        #: [workarounds] disable_deep_image_inspection is off (or unknown to
        #: the release: only a release whose Nova inspects reads it)
        self.deep = not settings.get('disable_deep_image_inspection')

    def lock(self, name, last):
        """A lock file whatever disable_process_locking says: every run is
        a process of its own, and the image cache is shared between them
        (an in-process lock would let two runs write one ``.part``)."""
        return {'name': name, 'path': self.paths.locks, 'external': True,
                'last': last}

    def copy_lock_name(self, is_path):
        return self.paths.base if is_path else self.paths.hex

    def section(self, lock_name, steps):
        """Tasks for ``steps`` run under one lock."""
        last = len(steps) - 1
        return [s.task(self.lock(lock_name, i == last))
                for i, s in enumerate(steps)]

    def article(self, key):
        """The article's note on ``key``, for releases its tables cover."""
        return [article.note(key)] if self.traits.article_notes else []

    def cleanup_notes(self):
        """Notes of a step whose half-made file Nova left behind."""
        if self.traits.cleanup_on_error:
            return []
        return [deviations.note('partial-copy')]


def build(release, settings, request):
    """The flow ``release``'s Nova ran for ``request``."""
    ctx = Context(release, settings, request)
    if ctx.backend not in ROOT_DISK:
        # rbd, ploop: valid for Nova, refused here before anything runs
        raise exception.NotSupported(
            f'images_type {ctx.backend} is not supported by imagepipe')
    if ctx.backend not in ctx.traits.backends:
        raise exception.NotSupported(
            f'images_type {ctx.backend} is not supported by imagepipe for '
            f'{release.name}')
    flow = linear_flow.Flow(f'{release.name}-{ctx.backend}')
    flow.add(*fetch_root(ctx))
    flow.add(*ROOT_DISK[ctx.backend](ctx))
    if request.get('ephemeral_gb'):
        flow.add(*generated_disk(ctx, 'ephemeral', request['ephemeral_gb']))
    if request.get('swap_mb'):
        flow.add(*generated_disk(ctx, 'swap', request['swap_mb']))
    flow.add(verify.VerifyDisks('verify',
                                inject={'disks': instance_disks(ctx)}))
    return flow


def instance_disks(ctx):
    """What VerifyDisks checks: each disk the flow makes for the instance."""
    raw_files = ctx.backend == 'raw'
    if ctx.backend == 'lvm':
        root = verify.disk(lvm_device(ctx), 'raw', ctx.size)
    else:
        root = verify.disk(ctx.paths.disk(),
                           ctx.base_format if raw_files else 'qcow2',
                           ctx.size)
    made = [root]
    generated = 'raw' if raw_files else 'qcow2'
    if ctx.request.get('ephemeral_gb'):
        made.append(verify.disk(ctx.paths.disk('disk.local'), generated,
                                ctx.request['ephemeral_gb'] * GiB))
    if ctx.request.get('swap_mb'):
        made.append(verify.disk(ctx.paths.disk('disk.swap'), generated,
                                ctx.request['swap_mb'] * MiB))
    return made


def warnings(release, settings):
    """Configurations with which ``release``'s Nova made unbootable disks."""
    backend = settings['images_type_effective']
    if settings['force_raw_images']:
        return []
    return [f'{release.name}: with force_raw_images=False and images type '
            f'{backend}, the instance disk keeps the format of the image but '
            'Nova declared it raw to libvirt: a non-raw (e.g. qcow2) image '
            f'does not boot ({bug})'
            for declared, bug in release.traits.declared_raw
            if declared == backend]


def fetch_root(ctx):
    """images.fetch_to_raw under the fetch lock ``$hex``."""
    p, t = ctx.paths, ctx.traits
    part, converted = p.base + '.part', p.base + '.converted'
    glance = {'api_servers': ctx.settings['glance_endpoints'],
              'num_retries': ctx.settings['glance_num_retries'],
              'insecure': bool(ctx.settings['glance_api_insecure']),
              'download_retries': ctx.settings['download_retries']}
    # Releases whose Nova compared the image with the flavor only once it
    # was fetched and converted are checked before converting too.
    checks_size = t.max_size_check or t.size_check_after_fetch
    max_size = ctx.size if checks_size else None
    fetch_notes = []
    if not t.file_locks:
        fetch_notes.append(deviations.note('essex-locks'))
    if not t.fetch_rechecks_in_lock:
        fetch_notes.append(deviations.note('fetch-lock-check'))
    inspect_args = {'part': part, 'base': p.base, 'max_size': max_size,
                    'expected_format': None,
                    'vmdk_allowed_types': ctx.settings.get(
                        'vmdk_allowed_types')}
    if t.nova_inspects:
        inspect_cls = inspect.DeepInspect
        inspect_args['deep'] = ctx.deep
        inspect_notes = [deviations.note('qcow2-check')]
    else:
        inspect_cls = inspect.Inspect
        inspect_notes = [deviations.note('inspection')]
    if t.size_check_after_fetch and not t.max_size_check:
        inspect_notes.append(deviations.note('size-before-convert'))
    elif not checks_size:
        inspect_notes.append(
            'this release did not compare the virtual size with the flavor '
            '(reference 7.10)')
    force_raw = ctx.settings['force_raw_images']
    convert_args = {'part': part, 'converted': converted, 'base': p.base,
                    'force_raw': force_raw, 'pin_format': True}
    if t.convert_pinned:
        convert_args['nova_pins_format'] = True
    return ctx.section(p.hex, [
        Step(fetch.Fetch, 'root-fetch',
             {'image': ctx.request['image'], 'glance': glance,
              'part': part, 'base': p.base},
             notes=fetch_notes),
        Step(inspect_cls, 'root-inspect', inspect_args,
             wire={'fetched': 'root-fetch'}, notes=inspect_notes),
        Step(convert.ConvertToRaw, 'root-convert', convert_args,
             wire={'image': 'root-inspect'},
             notes=ctx.article('convert-order') if force_raw else ()),
        Step(publish.Publish, 'root-publish', {'base': p.base},
             wire={'image': 'root-convert'}),
    ])


def grow_fs(ctx, name, path, variant, resize_step, notes=None, made=None):
    """e2fsck + resize2fs on a grown file or LV (disk.api.resize2fs)."""
    wire = {'resize': resize_step}
    if made:
        wire['made'] = made
    return Step(resize.ResizeFilesystem, name,
                {'path': path, 'variant': variant}, wire=wire,
                notes=ctx.article('e2fsck-first') if notes is None
                else notes)


def grow_image(name, path, size, fmt, notes=(), made=None):
    """qemu-img resize; grown or not is decided from the inspected image
    the disk was made from (root-inspect), never from the disk."""
    wire = {'origin': 'root-inspect'}
    if made:
        wire['made'] = made
    return Step(resize.ResizeImage, name,
                {'path': path, 'size': size, 'format': fmt}, wire=wire,
                notes=notes)


def check_size(ctx, touch):
    """Modern Nova: the cached base against the flavor, after fetch."""
    return Step(inspect.VerifyBaseSize, 'root-check-size',
                {'base': ctx.paths.base, 'size': ctx.size, 'touch': touch})


def base_checks(ctx):
    """Qcow2, 29.1.0+: the cached base inspected before its overlay.

    Returns (unlocked steps, steps for the copy lock). With the workaround
    only the qemu-img checks inside the lock stay.
    """
    if not ctx.traits.reinspect_base:
        return [], []
    args = {'base': ctx.paths.base,
            'vmdk_allowed_types': ctx.settings.get('vmdk_allowed_types')}
    before = [Step(inspect.InspectBase, 'root-inspect-base',
                   {**args, 'inspector': True, 'qemu_checks': False})]
    inside = [Step(inspect.RecheckBase, 'root-recheck-base',
                   {**args, 'inspector': ctx.deep, 'qemu_checks': True})]
    return (before if ctx.deep else []), inside


def root_qcow2(ctx):
    """Qcow2 backend (or Essex with use_cow_images): an overlay on the base."""
    p, t, size = ctx.paths, ctx.traits, ctx.size
    disk = p.disk()
    # Nova's Qcow2 constructor recorded the format, before any disk existed.
    tasks = disk_info(ctx, 'root', disk, 'qcow2')
    before, steps = base_checks(ctx)
    tasks += [s.unlocked() for s in before]
    if t.size_check_after_fetch:
        tasks.append(check_size(ctx, touch=True).unlocked())
    backing = p.base
    if t.resized_base and size:
        backing = p.resized_base(size)
        scope = ['root-copy-base', 'root-resize-base', 'root-resize-fs-base']
        staged = copy.tmp_name(backing)
        steps += [
            Step(copy.CopyImage, 'root-copy-base',
                 {'src': p.base, 'dest': backing, 'reuse': True,
                  'cache_scope': scope, 'staged': True},
                 notes=[article.note('resized-base')] + ctx.cleanup_notes()),
            grow_image('root-resize-base', staged, size, ctx.base_format,
                       made='root-copy-base'),
            grow_fs(ctx, 'root-resize-fs-base', staged, t.fs_resize,
                    'root-resize-base', made='root-copy-base'),
        ]
    born_sized = t.overlay_at_flavor_size and size
    steps.append(Step(
        overlay.CreateOverlay, 'root-overlay',
        {'base': backing, 'disk': disk, 'base_format': ctx.base_format,
         'cluster_size': t.overlay_cluster_size,
         'size': size if born_sized else None},
        notes=[BORN_SIZED] if born_sized else ()))
    if t.extend_overlay and size:
        steps += extend_overlay(ctx, disk)
    tasks += ctx.section(ctx.copy_lock_name(t.copy_lock_is_path), steps)
    return tasks + preallocation(ctx, 'root', disk, size)


BORN_SIZED = ('born at the flavor size (Nova 25.0.0+): no qemu-img resize '
              'follows and Nova never grows the filesystem of a qcow2 root; '
              'the guest grows it (cloud-init growpart)')

FLAT_RESIZE = ('Nova 33.x resizes a new copy with -f raw whatever it holds, '
               'then once more with the format it records in disk.info '
               '(a non-raw base: -f qcow2); imagepipe resizes once, with the '
               "copy's own format")


def extend_overlay(ctx, disk):
    """Grizzly+: grow the new overlay to the flavor size, then its fs."""
    t = ctx.traits
    nbd_fs = (t.overlay_fs_resize == 'nbd-option'
              and ctx.settings['resize_fs_using_block_device'])
    resize_notes = ([deviations.note('vfs-probe')]
                    if t.overlay_fs_resize == 'nbd-option' and not nbd_fs
                    else [])
    steps = [grow_image('root-resize', disk, ctx.size, 'qcow2',
                        notes=resize_notes)]
    if t.overlay_fs_resize == 'blind':
        steps.append(grow_fs(ctx, 'root-resize-fs', disk, 'blind',
                             'root-resize',
                             notes=[article.note('overlay-fs')]))
    elif nbd_fs:
        steps.append(Step(
            nbd.ResizeFsBlockDevice, 'root-resize-fs',
            {'path': disk, 'strict': t.fs_resize == 'strict',
             'nbd_root': '/dev'},
            wire={'resize': 'root-resize'},
            notes=[article.note('e2fsck-first')]))
    return steps


def root_raw(ctx):
    """Raw backend (or Essex without use_cow_images): a full copy."""
    p, t, size = ctx.paths, ctx.traits, ctx.size
    disk = p.disk()
    tasks = []
    if t.size_check_after_fetch:
        tasks.append(check_size(ctx, touch=True).unlocked())
    steps = [Step(copy.CopyImage, 'root-copy',
                  {'src': p.base, 'dest': disk, 'reuse': False,
                   'cache_scope': None},
                  notes=ctx.cleanup_notes())]
    if size:
        resize_notes = ([FLAT_RESIZE] if t.resize_format_pinned
                        and ctx.base_format is None else ())
        steps += [
            grow_image('root-resize', disk, size, ctx.base_format,
                       notes=resize_notes),
            grow_fs(ctx, 'root-resize-fs', disk, t.fs_resize, 'root-resize'),
        ]
    tasks += ctx.section(ctx.copy_lock_name(t.copy_lock_is_path), steps)
    # Nova's Raw backend probed and recorded the format once the copy existed.
    tasks += disk_info(ctx, 'root', disk, None)
    return tasks + preallocation(ctx, 'root', disk, size)


def lv_name(instance, disk_name):
    """Nova's LV name: ``<instance>_<disk>``, each ``_`` inside doubled."""
    return '_'.join(part.replace('_', '__') for part in (instance, disk_name))


def lvm_device(ctx):
    """/dev/<vg>/<lv> of the root disk on LVM."""
    return os.path.join('/dev', ctx.settings['images_volume_group'],
                        lv_name(ctx.request['instance'], 'disk'))


def root_lvm(ctx):
    """Lvm backend: the base written into a new logical volume."""
    p, t, s = ctx.paths, ctx.traits, ctx.settings
    vg = s['images_volume_group']
    lv = lv_name(ctx.request['instance'], 'disk')
    device = lvm_device(ctx)
    clear = s['volume_clear'] if t.volume_clear_option else 'zero'
    clear_size = s['volume_clear_size'] if t.volume_clear_option else 0
    fs_notes = ctx.article('e2fsck-first')
    if not t.lvm_fs_as_root:
        fs_notes.append(deviations.note('lvm-resize-root'))
    # Modern Nova checks the size inside the lock, before vgs (2.6 V2.1).
    steps = [check_size(ctx, touch=False)] if t.size_check_after_fetch else []
    write_notes = [LVM_PROBED] if t.convert_pinned else ()
    steps += [
        Step(lvm.CreateVolume, 'root-create-volume',
             {'vg': vg, 'lv': lv, 'device': device, 'size': ctx.size,
              'sparse': s['sparse_logical_volumes'],
              'vgs_columns': t.lvm_vgs, 'check_size': t.max_size_check,
              'volume_clear': clear, 'volume_clear_size': clear_size},
             wire={'image': 'root-inspect'}),
        Step(lvm.WriteVolume, 'root-write-volume',
             {'base': p.base, 'device': device, 'method': t.lvm_write,
              'base_format': ctx.base_format}, notes=write_notes),
        grow_fs(ctx, 'root-resize-fs', device, t.lvm_fs_resize,
                'root-create-volume', notes=fs_notes),
    ]
    return ctx.section(ctx.copy_lock_name(t.lvm_lock_is_path), steps)


LVM_PROBED = ('still so in 33.0.2: the one probed convert left, run as root '
              '(audited: every base came through fetch_to_raw or was made by '
              'Nova)')

ROOT_DISK = {'qcow2': root_qcow2, 'raw': root_raw, 'lvm': root_lvm}


def disk_info(ctx, prefix, disk, fmt):
    """Havana 2013.2.3+: record the disk's format in ``$D/disk.info``."""
    if not ctx.traits.disk_info:
        return []
    return [diskinfo.RecordDiskFormat(
        f'{prefix}-disk-info',
        inject={'info': ctx.paths.disk('disk.info'), 'disk': disk,
                'format': fmt, 'atomic': ctx.traits.disk_info == 'atomic'})]


def preallocation(ctx, prefix, disk, size):
    """Grizzly+: fallocate the disk when preallocate_images asks for it.

    Grizzly .. Juno tested ``!= 'none'``, so any other value counted; from
    Kilo only ``space`` does.
    """
    t = ctx.traits
    mode = ctx.settings['preallocate_images']
    wanted = mode == 'space' if t.preallocate_space_only else mode != 'none'
    if not (t.preallocation and size and wanted):
        return []
    notes = ([deviations.note('fallocate-probe')]
             if t.fallocate_probe_keep_size else [])
    return [preallocate.Preallocate(
        f'{prefix}-preallocate',
        inject={'path': disk, 'size': size, 'probe_keep_size': False},
        notes=notes + ctx.article('preallocate'))]


def generated_disk(ctx, kind, amount):
    """Ephemeral (GiB, ext3) or swap (MiB) disk, generated not fetched."""
    if ctx.backend == 'lvm':
        raise exception.NotSupported(
            f'{kind} disks on LVM are not supported by imagepipe')
    t = ctx.traits
    if kind == 'ephemeral':
        name, target_name = t.ephemeral_name.format(gb=amount), 'disk.local'
        size = amount * GiB
        args = {'size_gb': amount, 'fs_label': 'ephemeral0'}
        if t.ephemeral_fs:
            cls, args['fs'] = generate.CreateEphemeralFs, t.ephemeral_fs
        else:
            mkfs = t.ephemeral_mkfs
            cls = generate.CreateEphemeral
            args['mkfs'] = mkfs if isinstance(mkfs, str) else list(mkfs)
    else:
        name, target_name = f'swap_{amount}', 'disk.swap'
        cls, size = generate.CreateSwap, amount * MiB
        args = {'size_mb': amount}
    disk = ctx.paths.disk(target_name)
    if ctx.backend == 'raw':
        # Generated in place, under the lock of the cache name.
        tasks = ctx.section(name, [Step(
            cls, f'{kind}-create', {**args, 'target': disk, 'reuse': False})])
        tasks += disk_info(ctx, kind, disk, None)
        return tasks + preallocation(ctx, kind, disk, size)
    base = ctx.paths.cache(name)
    tasks = disk_info(ctx, kind, disk, 'qcow2')
    tasks += ctx.section(name, [Step(
        cls, f'{kind}-create-base', {**args, 'target': base, 'reuse': True})])
    copy_lock = base if t.copy_lock_is_path else name
    tasks += ctx.section(copy_lock, [Step(
        overlay.CreateOverlay, f'{kind}-overlay',
        {'base': base, 'disk': disk, 'base_format': 'raw',
         'cluster_size': t.overlay_cluster_size,
         'size': size if t.overlay_at_flavor_size else None},
        notes=[deviations.note('ephemeral-resized')]
        if t.resized_generated_base else ())])
    return tasks + preallocation(ctx, kind, disk, size)
