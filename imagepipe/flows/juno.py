"""Juno 2014.2.4: the [DEFAULT] libvirt_* names are gone.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, virtual size vs
                       flavor, convert to raw
qcow2 (lock $hex)      overlay, qemu-img resize disk; the filesystem only
                       through nbd with resize_fs_using_block_device
raw (lock $hex)        cp base disk, qemu-img resize, e2label, e2fsck
                       (exit 0-2 required) + resize2fs
lvm (lock $B/$hex)     vgs, lvcreate, qemu-img convert into the LV,
                       e2fsck (exit 0-2 required) + resize2fs;
                       volume_clear on failure
preallocate_images     fallocate -n -l SIZE disk
disk.info              written to disk.info.tmp, then renamed
=====================  ==============================================
"""

import dataclasses

from imagepipe.flows import icehouse
from imagepipe.flows import release

TRAITS = dataclasses.replace(
    icehouse.TRAITS,
    # the fetch lock re-checks again; the LVM lock is the base's path again
    fetch_rechecks_in_lock=True, lvm_lock_is_path=True,
    # disk.info written to a temporary file, then renamed
    disk_info='atomic',
)

RELEASE = release.Release(
    name='juno', nova_tag='2014.2.4', date='2014-10-16',
    options=icehouse.RELEASE.options,
    traits=TRAITS, previous=icehouse.RELEASE)
