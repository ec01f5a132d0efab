"""Grizzly 2013.1.5: no resized bases; overlays are grown in place.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, virtual size vs
                       flavor, convert to raw
qcow2 (lock $B/$hex)   overlay (cluster size of a qcow2 base), qemu-img
                       resize disk, e2fsck + resize2fs (fail on qcow2)
raw (lock $B/$hex)     cp base disk, qemu-img resize, e2fsck + resize2fs
lvm (lock $B/$hex)     vgs, lvcreate, qemu-img convert into the LV,
                       e2fsck + resize2fs as root (codes ignored)
preallocate_images     fallocate -n -l SIZE disk
=====================  ==============================================
"""

import dataclasses

from imagepipe.flows import folsom
from imagepipe.flows import release

TRAITS = dataclasses.replace(
    folsom.TRAITS,
    # image_cache_subdirectory_name is read again (LP#1083447 fixed)
    base_dir_option=True,
    # the image's virtual size is checked against the flavor
    max_size_check=True,
    # overlays on the base itself, then grown: no <hex>_<GiB> copies
    resized_base=False, resized_generated_base=False,
    overlay_cluster_size='inherit', extend_overlay=True,
    # Raw tells libvirt the format qemu-img finds in the disk (LP#1163009),
    # and an LV is written raw whatever the base holds (LP#1075333)
    declared_raw=(),
    lvm_write='convert', lvm_vgs='size,free',
    # e2fsck and resize2fs of an LV run as root (LP#1101137)
    lvm_fs_as_root=True,
    # preallocate_images
    preallocation=True,
    # ephemeral bases named after their OS type
    ephemeral_name='ephemeral_{gb}_default',
)

RELEASE = release.Release(
    name='grizzly', nova_tag='2013.1.5', date='2013-04-04',
    options=folsom.RELEASE.options + ('preallocate_images',),
    traits=TRAITS, previous=folsom.RELEASE)
