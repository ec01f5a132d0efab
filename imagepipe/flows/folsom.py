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

from imagepipe.flows import release

RELEASE = release.Release(
    name='folsom', nova_tag='2012.2.4', date='2012-09-27',
    options=('use_cow_images', 'force_raw_images', 'libvirt_images_type'),
    traits=release.Traits(
        base_dir_option=False,
        resized_base=True,
        fs_resize='blind',
        declared_raw=(('raw', 'LP#1163009'), ('lvm', 'LP#1075333')),
        ephemeral_name='ephemeral_0_{gb}_None',
        resized_generated_base=True,
        lvm_write='dd',
        lvm_vgs='free',
        lvm_fs_resize='blind',
        lvm_fs_as_root=False,
    ))
