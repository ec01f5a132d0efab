"""The root disk on an LVM logical volume (Lvm backend, Folsom+):
nova/virt/libvirt/imagebackend.py, Lvm.
"""

import os

from imagepipe.flows import deviations
from imagepipe.flows import steps as common
from imagepipe.flows.steps import Step
from imagepipe.tasks import lvm


def lv_name(instance, disk_name):
    """Nova's LV name: ``<instance>_<disk>``, each ``_`` inside doubled."""
    return '_'.join(part.replace('_', '__') for part in (instance, disk_name))


def device(build):
    """/dev/<vg>/<lv> of the root disk on LVM."""
    return os.path.join('/dev', build.settings['images_volume_group'],
                        lv_name(build.request['instance'], 'disk'))


def steps(build):
    """Lvm backend: the base written into a new logical volume."""
    p, t, s = build.paths, build.traits, build.settings
    vg = s['images_volume_group']
    lv = lv_name(build.request['instance'], 'disk')
    dev = device(build)
    clear = s['volume_clear'] if t.volume_clear_option else 'zero'
    clear_size = s['volume_clear_size'] if t.volume_clear_option else 0
    fs_notes = build.article('e2fsck-first')
    if not t.lvm_fs_as_root:
        fs_notes.append(deviations.note('lvm-resize-root'))
    # Modern Nova checks the size inside the lock, before vgs
    # (nova/virt/libvirt/imagebackend.py@33.0.2, Lvm.create_image).
    locked = ([common.check_size(build, touch=False)]
              if t.size_check_after_fetch else [])
    write_notes = ([deviations.note('pinned-format')]
                   if t.lvm_write == 'convert' else ())
    write_args = {'base': p.base, 'device': dev, 'method': t.lvm_write,
                  'base_format': build.base_format}
    if (slots := build.disk_ops()) and t.lvm_write == 'convert':
        write_args['disk_ops'] = slots
    locked += [
        Step(lvm.CreateVolume, 'root-create-volume',
             {'vg': vg, 'lv': lv, 'device': dev, 'size': build.size,
              'sparse': s['sparse_logical_volumes'],
              'vgs_columns': t.lvm_vgs, 'check_size': t.max_size_check,
              'volume_clear': clear, 'volume_clear_size': clear_size},
             wire={'image': 'root-inspect'}),
        Step(lvm.WriteVolume, 'root-write-volume', write_args,
             notes=write_notes),
        common.grow_fs(build, 'root-resize-fs', dev, t.lvm_fs_resize,
                       'root-create-volume', notes=fs_notes),
    ]
    return build.section(build.copy_lock_name(t.lvm_lock_is_path), locked)

