"""Ephemeral and swap disks: generated, not fetched
(nova/virt/libvirt/driver.py, _create_ephemeral and _create_swap).
"""

from imagepipe import exception
from imagepipe.flows import deviations
from imagepipe.flows import steps as common
from imagepipe.flows.steps import Step
from imagepipe.tasks import generate
from imagepipe.tasks import overlay


def steps(build, kind, amount):
    """Ephemeral (GiB, ext3) or swap (MiB) disk, generated not fetched."""
    if build.backend == 'lvm':
        raise exception.NotSupported(
            f'{kind} disks on LVM are not supported by imagepipe')
    t = build.traits
    if kind == 'ephemeral':
        name, target_name = t.ephemeral_name.format(gb=amount), 'disk.local'
        size = amount * common.GiB
        args = {'size_gb': amount, 'fs_label': 'ephemeral0'}
        if t.ephemeral_fs:
            cls, args['fs'] = generate.CreateEphemeralFs, t.ephemeral_fs
        else:
            mkfs = t.ephemeral_mkfs
            cls = generate.CreateEphemeral
            args['mkfs'] = mkfs if isinstance(mkfs, str) else list(mkfs)
    else:
        name, target_name = f'swap_{amount}', 'disk.swap'
        cls, size = generate.CreateSwap, amount * common.MiB
        args = {'size_mb': amount}
    disk = build.paths.disk(target_name)
    if build.backend == 'raw':
        # Generated in place, under the lock of the cache name.
        tasks = build.section(name, [Step(
            cls, f'{kind}-create', {**args, 'target': disk, 'reuse': False})])
        tasks += common.disk_info(build, kind, disk, None)
        return tasks + common.preallocation(build, kind, disk, size)
    base = build.paths.cache(name)
    tasks = common.disk_info(build, kind, disk, 'qcow2')
    tasks += build.section(name, [Step(
        cls, f'{kind}-create-base', {**args, 'target': base, 'reuse': True})])
    copy_lock = base if t.copy_lock_is_path else name
    tasks += build.section(copy_lock, [Step(
        overlay.CreateOverlay, f'{kind}-overlay',
        {'base': base, 'disk': disk, 'base_format': 'raw',
         'cluster_size': t.overlay_cluster_size,
         'size': size if t.overlay_at_flavor_size else None},
        notes=([deviations.note('ephemeral-resized')]
               if t.resized_generated_base else [])
        + build.backing_fmt_notes())])
    return tasks + common.preallocation(build, kind, disk, size)
