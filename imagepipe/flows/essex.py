"""Essex 2012.1.3: no backends yet; use_cow_images alone decides.

=====================  ==============================================
fetch (lock $hex)      download .part, qemu-img info, convert to raw
use_cow_images=True    cp base <hex>_<GiB>, qemu-img resize, e2fsck +
                       resize2fs (failures ignored), overlay on it
use_cow_images=False   cp base disk, qemu-img resize, e2fsck + resize2fs
=====================  ==============================================

Nova's locks were in-process semaphores; imagepipe uses lock files.
use_cow_images=False with force_raw_images=False gives a copy in the
image's format that libvirt is told is raw (LP#1163009).
"""

from imagepipe.flows import release

TRAITS = release.Traits(
    file_locks=False,
    cleanup_on_error=False,
    resized_base=True,
    fs_resize='blind',
    declared_raw=(('raw', 'LP#1163009'),),
    ephemeral_name='ephemeral_0_{gb}_None',
    backends=('raw', 'qcow2'),
)

RELEASE = release.Release(
    name='essex', nova_tag='2012.1.3', date='2012-04-05',
    options=('use_cow_images', 'force_raw_images'),
    traits=TRAITS)
