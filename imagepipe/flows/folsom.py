"""Folsom 2012.2.4: the image backends (Raw, Qcow2, Lvm) arrive.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, convert to raw
qcow2 (lock $B/$hex)   cp base <hex>_<GiB>, qemu-img resize, e2fsck +
                       resize2fs (failures ignored), overlay on it
raw (lock $B/$hex)     cp base disk, qemu-img resize, e2fsck + resize2fs
lvm (lock $B/$hex)     vgs, lvcreate, dd the base into the LV, e2fsck +
                       resize2fs as the nova user (codes ignored)
=====================  ==============================================

The image cache directory is hard-coded to _base (LP#1083447). With
force_raw_images=False, Raw and Lvm disks hold a non-raw image that
libvirt is told is raw (LP#1163009, LP#1075333).
"""

import dataclasses

from imagepipe.flows import essex
from imagepipe.flows import release

TRAITS = dataclasses.replace(
    essex.TRAITS,
    # lockutils lock files instead of in-process semaphores
    file_locks=True,
    # a failed copy or resize removes the half-made file
    cleanup_on_error=True,
    # the image cache directory is _base whatever the option says
    base_dir_option=False,
    # the Lvm backend: dd of the base, e2fsck + resize2fs as the nova user
    backends=('raw', 'qcow2', 'lvm'),
    lvm_write='dd', lvm_vgs='free',
    lvm_fs_resize='blind', lvm_fs_as_root=False,
    declared_raw=(('raw', 'LP#1163009'), ('lvm', 'LP#1075333')),
    # the Qcow2 backend resizes generated bases too
    resized_generated_base=True,
)

RELEASE = release.Release(
    name='folsom', nova_tag='2012.2.4', date='2012-09-27',
    options=essex.RELEASE.options + ('libvirt_images_type',),
    traits=TRAITS, previous=essex.RELEASE)
