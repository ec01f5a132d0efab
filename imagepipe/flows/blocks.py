"""The building blocks every release flow is made of, chosen by traits.

Reference: nova-reference.md section 3 (root disk), 3.7 (ephemeral and swap),
section 5 (LVM). Steps taken under one of Nova's locks form a section: the
first task takes the lock, the last one releases it (imagepipe.tasks.locks).

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

    def lock(self, name, last):
        return {'name': name, 'path': self.paths.locks,
                'external': not self.settings['disable_process_locking'],
                'last': last}

    def copy_lock_name(self, is_path):
        return self.paths.base if is_path else self.paths.hex

    def section(self, lock_name, steps):
        """Tasks for ``steps`` run under one lock."""
        last = len(steps) - 1
        return [s.task(self.lock(lock_name, i == last))
                for i, s in enumerate(steps)]

    def cleanup_notes(self):
        """Notes of a step whose half-made file Nova left behind."""
        if self.traits.cleanup_on_error:
            return []
        return [deviations.note('partial-copy')]


def build(release, settings, request):
    """The flow ``release``'s Nova ran for ``request``."""
    ctx = Context(release, settings, request)
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
    return flow


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
    glance = {'api_servers': ctx.settings['glance_endpoints']}
    max_size = ctx.size if t.max_size_check else None
    fetch_notes = []
    if not t.file_locks:
        fetch_notes.append(deviations.note('essex-locks'))
    if not t.fetch_rechecks_in_lock:
        fetch_notes.append(deviations.note('fetch-lock-check'))
    inspect_notes = [deviations.note('inspection')]
    if not t.max_size_check:
        inspect_notes.append('this release did not compare the virtual size '
                             'with the flavor (reference 7.10)')
    force_raw = ctx.settings['force_raw_images']
    return ctx.section(p.hex, [
        Step(fetch.Fetch, 'root-fetch',
             {'image': ctx.request['image'], 'glance': glance,
              'part': part, 'base': p.base},
             notes=fetch_notes),
        Step(inspect.Inspect, 'root-inspect',
             {'part': part, 'base': p.base, 'max_size': max_size,
              'expected_format': None, 'vmdk_allowed_types': None},
             wire={'fetched': 'root-fetch'}, notes=inspect_notes),
        Step(convert.ConvertToRaw, 'root-convert',
             {'part': part, 'converted': converted, 'force_raw': force_raw,
              'pin_format': True},
             wire={'image': 'root-inspect'},
             notes=[article.note('convert-order')] if force_raw else ()),
        Step(publish.Publish, 'root-publish', {'base': p.base},
             wire={'image': 'root-convert'}),
    ])


def grow_fs(ctx, name, path, variant, resize_step, notes=None):
    """e2fsck + resize2fs on a grown file or LV (disk.api.resize2fs)."""
    return Step(resize.ResizeFilesystem, name,
                {'path': path, 'variant': variant},
                wire={'resize': resize_step},
                notes=[article.note('e2fsck-first')] if notes is None
                else notes)


def root_qcow2(ctx):
    """Qcow2 backend (or Essex with use_cow_images): an overlay on the base."""
    p, t, size = ctx.paths, ctx.traits, ctx.size
    disk = p.disk()
    # Nova's Qcow2 constructor recorded the format, before any disk existed.
    tasks = disk_info(ctx, 'root', disk, 'qcow2')
    backing = p.base
    steps = []
    if t.resized_base and size:
        backing = p.resized_base(size)
        scope = ['root-copy-base', 'root-resize-base', 'root-resize-fs-base']
        steps += [
            Step(copy.CopyImage, 'root-copy-base',
                 {'src': p.base, 'dest': backing, 'reuse': True,
                  'cache_scope': scope},
                 notes=[article.note('resized-base')] + ctx.cleanup_notes()),
            Step(resize.ResizeImage, 'root-resize-base',
                 {'path': backing, 'size': size, 'format': ctx.base_format}),
            grow_fs(ctx, 'root-resize-fs-base', backing, t.fs_resize,
                    'root-resize-base'),
        ]
    steps.append(Step(
        overlay.CreateOverlay, 'root-overlay',
        {'base': backing, 'disk': disk, 'base_format': ctx.base_format,
         'cluster_size': t.overlay_cluster_size, 'size': None}))
    if t.extend_overlay and size:
        steps += extend_overlay(ctx, disk)
    tasks += ctx.section(ctx.copy_lock_name(t.copy_lock_is_path), steps)
    return tasks + preallocation(ctx, 'root', disk, size)


def extend_overlay(ctx, disk):
    """Grizzly+: grow the new overlay to the flavor size, then its fs."""
    t = ctx.traits
    nbd_fs = (t.overlay_fs_resize == 'nbd-option'
              and ctx.settings['resize_fs_using_block_device'])
    resize_notes = ([deviations.note('vfs-probe')]
                    if t.overlay_fs_resize == 'nbd-option' and not nbd_fs
                    else [])
    steps = [Step(resize.ResizeImage, 'root-resize',
                  {'path': disk, 'size': ctx.size, 'format': 'qcow2'},
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
    steps = [Step(copy.CopyImage, 'root-copy',
                  {'src': p.base, 'dest': disk, 'reuse': False,
                   'cache_scope': None},
                  notes=ctx.cleanup_notes())]
    if size:
        steps += [
            Step(resize.ResizeImage, 'root-resize',
                 {'path': disk, 'size': size, 'format': ctx.base_format}),
            grow_fs(ctx, 'root-resize-fs', disk, t.fs_resize, 'root-resize'),
        ]
    tasks = ctx.section(ctx.copy_lock_name(t.copy_lock_is_path), steps)
    # Nova's Raw backend probed and recorded the format once the copy existed.
    tasks += disk_info(ctx, 'root', disk, None)
    return tasks + preallocation(ctx, 'root', disk, size)


def lv_name(instance, disk_name):
    """Nova's LV name: ``<instance>_<disk>``, each ``_`` inside doubled."""
    return '_'.join(part.replace('_', '__') for part in (instance, disk_name))


def root_lvm(ctx):
    """Lvm backend: the base written into a new logical volume."""
    p, t, s = ctx.paths, ctx.traits, ctx.settings
    vg = s['images_volume_group']
    lv = lv_name(ctx.request['instance'], 'disk')
    device = os.path.join('/dev', vg, lv)
    clear = s['volume_clear'] if t.volume_clear_option else 'zero'
    clear_size = s['volume_clear_size'] if t.volume_clear_option else 0
    fs_notes = [article.note('e2fsck-first')]
    if not t.lvm_fs_as_root:
        fs_notes.append(deviations.note('lvm-resize-root'))
    steps = [
        Step(lvm.CreateVolume, 'root-create-volume',
             {'vg': vg, 'lv': lv, 'device': device, 'size': ctx.size,
              'sparse': s['sparse_logical_volumes'],
              'vgs_columns': t.lvm_vgs, 'check_size': t.max_size_check,
              'volume_clear': clear, 'volume_clear_size': clear_size},
             wire={'image': 'root-inspect'}),
        Step(lvm.WriteVolume, 'root-write-volume',
             {'base': p.base, 'device': device, 'method': t.lvm_write,
              'base_format': ctx.base_format}),
        grow_fs(ctx, 'root-resize-fs', device, t.lvm_fs_resize,
                'root-create-volume', notes=fs_notes),
    ]
    return ctx.section(ctx.copy_lock_name(t.lvm_lock_is_path), steps)


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
    """Grizzly+: fallocate the disk when preallocate_images is not none.

    Nova of these releases tested ``!= 'none'``, so any other value counts.
    """
    mode = ctx.settings['preallocate_images']
    if not (ctx.traits.preallocation and size and mode != 'none'):
        return []
    return [preallocate.Preallocate(
        f'{prefix}-preallocate',
        inject={'path': disk, 'size': size, 'probe_keep_size': False},
        notes=[deviations.note('fallocate-probe'),
               article.note('preallocate')])]


def generated_disk(ctx, kind, amount):
    """Ephemeral (GiB, ext3) or swap (MiB) disk, generated not fetched."""
    if ctx.backend == 'lvm':
        raise exception.NotSupported(
            f'{kind} disks on LVM are not supported by imagepipe')
    t = ctx.traits
    if kind == 'ephemeral':
        name, target_name = t.ephemeral_name.format(gb=amount), 'disk.local'
        mkfs = t.ephemeral_mkfs
        cls, size = generate.CreateEphemeral, amount * GiB
        args = {'size_gb': amount, 'fs_label': 'ephemeral0',
                'mkfs': mkfs if isinstance(mkfs, str) else list(mkfs)}
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
         'cluster_size': t.overlay_cluster_size, 'size': None},
        notes=[deviations.note('ephemeral-resized')]
        if t.resized_generated_base else ())])
    return tasks + preallocation(ctx, kind, disk, size)
