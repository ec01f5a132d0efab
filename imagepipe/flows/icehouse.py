"""Icehouse 2014.1.5: options move to [libvirt]; one lock name per base.

=====================  ==============================================
fetch (lock $hex)      base existence checked outside the lock;
                       download .part, qemu-img info, virtual size vs
                       flavor, convert to raw
qcow2 (lock $hex)      overlay, qemu-img resize disk; the filesystem only
                       through nbd with resize_fs_using_block_device
raw (lock $hex)        cp base disk, qemu-img resize, e2label, e2fsck
                       (exit 0-2 required) + resize2fs
lvm (lock $hex)        vgs, lvcreate, qemu-img convert into the LV,
                       e2fsck (exit 0-2 required) + resize2fs;
                       volume_clear on failure
preallocate_images     fallocate -n -l SIZE disk
disk.info              the disk's format, recorded once
=====================  ==============================================
"""

import dataclasses

from imagepipe.flows import havana
from imagepipe.flows import release

TRAITS = dataclasses.replace(
    havana.TRAITS,
    # every lock of a base named $hex; the fetch lock no longer re-checks
    # (LP#1298420)
    copy_lock_is_path=False, lvm_lock_is_path=False,
    fetch_rechecks_in_lock=False,
    # e2fsck's exit code counts, on files and LVs alike
    fs_resize='strict', lvm_fs_resize='device',
    # volume_clear
    volume_clear_option=True,
    # mkfs -t ext3 rather than mkfs.ext3
    ephemeral_mkfs=('mkfs', '-t', 'ext3'),
)

RELEASE = release.Release(
    name='icehouse', nova_tag='2014.1.5', date='2014-04-17',
    options=('use_cow_images', 'force_raw_images', '[libvirt] images_type',
             'preallocate_images', 'resize_fs_using_block_device'),
    traits=TRAITS, previous=havana.RELEASE)
