"""Folsom 2012.2.4: the image backends (Raw, Qcow2, Lvm) arrive.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, convert to raw
qcow2 (lock $B/$hex)   cp base <hex>_<GiB>, qemu-img resize, e2fsck +
                       resize2fs (failures ignored), overlay on it
raw (lock $B/$hex)     cp base disk, qemu-img resize, e2fsck + resize2fs
lvm (lock $B/$hex)     vgs, lvcreate, dd the base into the LV, resize fs
=====================  ==============================================

The image cache directory is hard-coded to _base (LP#1083447).
"""

from imagepipe.flows import release

RELEASE = release.Release(
    name='folsom', nova_tag='2012.2.4', date='2012-09-27',
    options=('use_cow_images', 'force_raw_images', 'libvirt_images_type'),
    traits=release.Traits(
        base_dir_option=False,
        resized_base=True,
        fs_resize='blind',
        lvm_write='dd',
        lvm_vgs='free',
    ))
