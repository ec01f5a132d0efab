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

from imagepipe.flows import release

RELEASE = release.Release(
    name='juno', nova_tag='2014.2.4', date='2014-10-16',
    options=('use_cow_images', 'force_raw_images', '[libvirt] images_type',
             'preallocate_images', 'resize_fs_using_block_device'),
    traits=release.Traits(
        copy_lock_is_path=False,
        max_size_check=True,
        overlay_cluster_size='inherit',
        extend_overlay=True,
        overlay_fs_resize='nbd-option',
        fs_resize='strict',
        preallocation=True,
        volume_clear_option=True,
        ephemeral_mkfs=('mkfs', '-t', 'ext3'),
        disk_info='atomic',
    ))
