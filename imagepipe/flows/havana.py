"""Havana 2013.2.4: filesystems are only grown where Nova can tell they fit.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, virtual size vs
                       flavor, convert to raw
qcow2 (lock $B/$hex)   overlay, qemu-img resize disk; the filesystem only
                       through nbd with resize_fs_using_block_device
raw (lock $B/$hex)     cp base disk, qemu-img resize, e2label, then
                       e2fsck + resize2fs
lvm (lock $B/$hex)     vgs, lvcreate, qemu-img convert into the LV,
                       e2fsck + resize2fs as root (codes ignored)
preallocate_images     fallocate -n -l SIZE disk
disk.info              the disk's format, recorded once (2013.2.3+)
=====================  ==============================================
"""

import dataclasses

from imagepipe.flows import grizzly
from imagepipe.flows import release

TRAITS = dataclasses.replace(
    grizzly.TRAITS,
    # files: e2label first, a filesystem grown only if it is one
    fs_resize='checked',
    # qcow2: the filesystem only through nbd, and only with the option
    overlay_fs_resize='nbd-option',
    # disk.info
    disk_info='append',
)

RELEASE = release.Release(
    name='havana', nova_tag='2013.2.4', date='2013-10-17',
    options=grizzly.RELEASE.options + ('resize_fs_using_block_device',),
    traits=TRAITS, previous=grizzly.RELEASE)
