"""The root disk as a full copy of the cached base (Raw/Flat backend, or
Essex without use_cow_images): nova/virt/libvirt/imagebackend.py, Raw.
"""

from imagepipe.flows import deviations
from imagepipe.flows import steps as common
from imagepipe.flows.steps import Step
from imagepipe.tasks import copy


def steps(build):
    """Raw backend (or Essex without use_cow_images): a full copy."""
    p, t, size = build.paths, build.traits, build.size
    disk = p.disk()
    tasks = []
    if t.size_check_after_fetch:
        tasks.append(common.check_size(build, touch=True).unlocked())
    locked = [Step(copy.CopyImage, 'root-copy',
                  {'src': p.base, 'dest': disk, 'reuse': False,
                   'cache_scope': None},
                  notes=build.cleanup_notes())]
    if size:
        resize_notes = ([deviations.note('flat-resize')]
                        if t.resize_format_pinned
                        and build.base_format is None else ())
        locked += [
            common.grow_image(build, 'root-resize', disk, size,
                              build.base_format, notes=resize_notes),
            common.grow_fs(build, 'root-resize-fs', disk, t.fs_resize,
                           'root-resize'),
        ]
    tasks += build.section(build.copy_lock_name(t.copy_lock_is_path), locked)
    # Nova's Raw backend probed and recorded the format once the copy existed.
    tasks += common.disk_info(build, 'root', disk, None)
    return tasks + common.preallocation(build, 'root', disk, size)

