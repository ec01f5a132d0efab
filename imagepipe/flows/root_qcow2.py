"""The root disk as a qcow2 overlay on the cached base (Qcow2 backend, or
Essex with use_cow_images): nova/virt/libvirt/imagebackend.py, Qcow2.
"""

from imagepipe.flows import article
from imagepipe.flows import deviations
from imagepipe.flows import steps as common
from imagepipe.flows.steps import Step
from imagepipe.tasks import copy
from imagepipe.tasks import nbd
from imagepipe.tasks import overlay
from imagepipe.tasks import recheck


def base_checks(build):
    """Qcow2, 29.1.0+: the cached base inspected before its overlay.

    Returns (unlocked steps, steps for the copy lock). With the workaround
    only the qemu-img checks inside the lock stay.
    """
    if not build.traits.reinspect_base:
        return [], []
    args = {'base': build.paths.base,
            'vmdk_allowed_types': build.settings.get('vmdk_allowed_types')}
    before = [Step(recheck.InspectBase, 'root-inspect-base',
                   {**args, 'inspector': True, 'qemu_checks': False})]
    inside = [Step(recheck.RecheckBase, 'root-recheck-base',
                   {**args, 'inspector': build.deep, 'qemu_checks': True})]
    return (before if build.deep else []), inside


def steps(build):
    """Qcow2 backend (or Essex with use_cow_images): an overlay on the base."""
    p, t, size = build.paths, build.traits, build.size
    disk = p.disk()
    # Nova's Qcow2 constructor recorded the format, before any disk existed.
    tasks = common.disk_info(build, 'root', disk, 'qcow2')
    before, locked = base_checks(build)
    tasks += [s.unlocked() for s in before]
    if t.size_check_after_fetch:
        tasks.append(common.check_size(build, touch=True).unlocked())
    backing = p.base
    if t.resized_base and size:
        backing = p.resized_base(size)
        scope = ['root-copy-base', 'root-resize-base', 'root-resize-fs-base']
        staged = copy.tmp_name(backing)
        locked += [
            Step(copy.CopyImage, 'root-copy-base',
                 {'src': p.base, 'dest': backing, 'reuse': True,
                  'cache_scope': scope, 'staged': True},
                 notes=([article.note('resized-base')]
                        + build.cleanup_notes())),
            common.grow_image(build, 'root-resize-base', staged, size,
                              build.base_format, made='root-copy-base'),
            common.grow_fs(build, 'root-resize-fs-base', staged, t.fs_resize,
                           'root-resize-base', made='root-copy-base'),
        ]
    born_sized = t.overlay_at_flavor_size and size
    locked.append(Step(
        overlay.CreateOverlay, 'root-overlay',
        {'base': backing, 'disk': disk, 'base_format': build.base_format,
         'cluster_size': t.overlay_cluster_size,
         'size': size if born_sized else None},
        notes=([BORN_SIZED] if born_sized else [])
        + build.backing_fmt_notes()))
    if t.extend_overlay and size:
        locked += extend_overlay(build, disk)
    tasks += build.section(build.copy_lock_name(t.copy_lock_is_path), locked)
    return tasks + common.preallocation(build, 'root', disk, size)


BORN_SIZED = ('born at the flavor size (Nova 25.0.0+): no qemu-img resize '
              'follows and Nova never grows the filesystem of a qcow2 root; '
              'the guest grows it (cloud-init growpart)')


def extend_overlay(build, disk):
    """Grizzly+: grow the new overlay to the flavor size, then its fs."""
    t = build.traits
    nbd_fs = (t.overlay_fs_resize == 'nbd-option'
              and build.settings['resize_fs_using_block_device'])
    resize_notes = ([deviations.note('vfs-probe')]
                    if t.overlay_fs_resize == 'nbd-option' and not nbd_fs
                    else [])
    grow = [common.grow_image(build, 'root-resize', disk, build.size,
                              'qcow2', notes=resize_notes)]
    if t.overlay_fs_resize == 'blind':
        grow.append(common.grow_fs(build, 'root-resize-fs', disk, 'blind',
                                   'root-resize',
                                   notes=[article.note('overlay-fs')]))
    elif nbd_fs:
        grow.append(Step(
            nbd.ResizeFsBlockDevice, 'root-resize-fs',
            {'path': disk, 'strict': t.fs_resize == 'strict',
             'nbd_root': '/dev'},
            wire={'resize': 'root-resize'},
            notes=[article.note('e2fsck-first')]))
    return grow
