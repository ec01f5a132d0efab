"""Gazpacho 2026.1 (Nova 33.0.2): today's Nova.

=====================  ==============================================
fetch (lock $hex)      download .part, format inspector against the
                       Glance disk_format, qemu-img info (backing
                       file, data-file, VMDK create-type), convert to
                       raw with -f; no size check here
qcow2                  inspector on the cached base, touch + virtual
                       size vs flavor (FlavorDiskSmallerThanImage);
                       lock $hex: inspector + qemu-img info again,
                       overlay with backing_fmt born at the flavor
                       size: no resize, the filesystem is not grown
flat/raw               touch + size vs flavor; lock $hex: cp, qemu-img
                       resize -f, e2label, e2fsck (exit 0-2) +
                       resize2fs; disk.info
lvm (lock $hex)        size vs flavor, vgs, lvcreate, qemu-img convert
                       into the LV, e2fsck (exit 0-2) + resize2fs;
                       volume_clear on failure
preallocate_images     space only: fallocate -n -l SIZE disk (probe
                       without -n)
disk.info              written to disk.info.tmp, then renamed
rbd, ploop             valid for the configuration, refused by imagepipe
=====================  ==============================================

Releases between Juno and Gazpacho are not modelled: their changes are
folded into this one (nova/virt/libvirt/imagebackend.py@33.0.2).
"""

import dataclasses
import hashlib

from imagepipe.flows import juno
from imagepipe.flows import release

#: Modern Nova formats an ephemeral disk of an image without os_type as
#: vfat and names its cache file after the md5 of the filesystem name.
EPHEMERAL_FS = 'vfat'
_FS_HASH = hashlib.md5(EPHEMERAL_FS.encode(), usedforsecurity=False)

TRAITS = dataclasses.replace(
    juno.TRAITS,
    # the LVM copy lock is $hex again
    lvm_lock_is_path=False,
    # the format inspector on downloads (29.1.0+), and on the cached base
    # before each overlay
    nova_inspects=True, reinspect_base=True,
    # the flavor size is checked on the cached base, after conversion
    max_size_check=False, size_check_after_fetch=True,
    # qcow2 overlays born at the flavor size: no resize, no fs resize
    overlay_at_flavor_size=True, extend_overlay=False, overlay_fs_resize=None,
    # qemu-img convert and resize name their formats, overlays their
    # backing format
    convert_pinned=True, resize_format_pinned=True, overlay_backing_fmt=True,
    # only preallocate_images=space preallocates; the probe lost -n
    preallocate_space_only=True, fallocate_probe_keep_size=False,
    # ephemeral disks: mkfs -t <fs>, cache name from the filesystem's hash
    ephemeral_fs=EPHEMERAL_FS, ephemeral_mkfs=None,
    ephemeral_name='ephemeral_{gb}_' + _FS_HASH.hexdigest()[:7],
    # not in the article's tables
    article_notes=False,
)

RELEASE = release.Release(
    name='gazpacho', nova_tag='33.0.2', date='2026-06-16',
    options=('use_cow_images', 'force_raw_images', '[libvirt] images_type',
             'preallocate_images',
             '[workarounds] disable_deep_image_inspection'),
    traits=TRAITS, previous=juno.RELEASE)
