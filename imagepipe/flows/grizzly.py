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

from imagepipe.flows import release

RELEASE = release.Release(
    name='grizzly', nova_tag='2013.1.5', date='2013-04-04',
    options=('use_cow_images', 'force_raw_images', 'libvirt_images_type',
             'preallocate_images'),
    traits=release.Traits(
        max_size_check=True,
        overlay_cluster_size='inherit',
        extend_overlay=True,
        overlay_fs_resize='blind',
        fs_resize='blind',
        preallocation=True,
        lvm_fs_resize='blind',
    ))
