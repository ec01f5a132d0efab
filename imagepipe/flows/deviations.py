"""Every place imagepipe deliberately does not do what Nova's code did.

Nova's bugs that lost or duplicated work, left temporary files behind or let
hostile images through are not reproduced. The prose lives here only: a
flow adds :func:`note` of a key to the step it concerns (tasks carry none),
and the documentation's deviations page lists every key from here.
"""

#: key -> (short note for the plan, reference, explanation for the docs)
DEVIATIONS = {
    'fetch-lock-check': (
        'base existence checked inside the lock',
        'LP#1298420',
        'The existence check of the base is always made inside the fetch '
        'lock. Icehouse checked outside it, so concurrent first boots of one '
        'image each downloaded it again.'),
    'essex-locks': (
        'file locks',
        'Essex',
        'Essex locked fetch and copy with in-process semaphores only, so two '
        'processes could download or copy one image at once; imagepipe '
        'always uses lock files.'),
    'partial-copy': (
        'copied to a temporary name, then renamed',
        'Essex',
        'A failed copy or resize never leaves a partial <hex>_<GiB> or disk: '
        'work goes to a temporary name first. Essex reused a partial '
        'resized base forever.'),
    'inspection': (
        'format inspector, qemu-img info and check before use',
        'OSSA-2024-001',
        'Every download goes through the format inspector (backing file, '
        'qcow2 data-file, VMDK extents, format lies), qemu-img info under '
        'prlimit and, for qcow2, qemu-img check before anything is '
        'converted. Nova of these releases only refused a backing file.'),
    'qcow2-check': (
        'qemu-img check of qcow2 downloads',
        '33.0.2',
        'A downloaded qcow2 also goes through qemu-img check before it is '
        'converted or used: a truncated qcow2 passes the format inspector and '
        'converts "successfully" into a wrong disk. Nova 33.0.2 runs the '
        'inspector and qemu-img info only.'),
    'pinned-format': (
        'format pinned with -f',
        'LP#1524274',
        'qemu-img convert, resize and the write into a logical volume get '
        '-f with the inspected format. Nova let qemu-img probe the format '
        'of the file: fetch_to_raw until Mitaka, qemu-img resize until '
        '33.0.0 (CVE-2026-24708), and the LVM backend\'s convert into the '
        'volume still in 33.0.2, run as root (every base there came '
        'through fetch_to_raw or was made by Nova). That write also gets '
        '-t none, which Nova passed only in modern releases.'),
    'flat-resize': (
        'resized once, with the copy\'s format',
        'nova/virt/libvirt/imagebackend.py@33.0.2',
        'Nova 33.x resizes a new Flat copy with -f raw whatever it holds, '
        'then once more with the format it records in disk.info (a non-raw '
        'base: -f qcow2); imagepipe resizes once, with the copy\'s own '
        'format.'),
    'backing-fmt': (
        'backing_fmt added',
        'qemu-img 6.1',
        'Overlays name their backing format (backing_fmt): qemu-img 6.1 and '
        'newer refuse a backing file without one. Nova passed none before '
        'modern releases.'),
    'size-before-convert': (
        'virtual size checked before conversion',
        'nova/virt/libvirt/imagebackend.py@33.0.2',
        'The virtual size the inspection measured is compared with the '
        "flavor's root disk before anything is converted. Nova since Newton "
        'compares only the cached base, once fetched and converted '
        '(Image.verify_base_size), so a small compressed qcow2 that expands '
        'far beyond the flavor first fills the image cache and stays there. '
        'The later comparison is kept as well.'),
    'header-size': (
        'stopped once the header shows the image too large',
        'nova/virt/images.py@2014.2.4',
        'A download whose first bytes (the header oslo.utils\' format '
        'inspector reads, or the length a raw image is sent with) show a '
        "virtual size larger than the flavor's root disk stops there, with "
        'the refusal the inspection would give after the whole download. '
        'Nova compared the sizes only once the image was fully downloaded '
        '(fetch_to_raw) or, since Newton, cached and converted. This only '
        'saves time: the complete image is still inspected.'),
    'lvm-resize-root': (
        'filesystem grown as root',
        'LP#1101137',
        'The filesystem on a new logical volume is grown as root. Folsom ran '
        'e2fsck and resize2fs as the nova user, where they failed silently.'),
    'fallocate-probe': (
        'probe without -n',
        'LP#1543181',
        'Grizzly to Juno probed with "fallocate -n -l 1 <disk>.fallocate_test"'
        '; util-linux 2.26 and later do not create the missing test file '
        'under -n, so on a current host the probe always fails and '
        'preallocate_images=space would silently do nothing. imagepipe '
        'probes without -n, as Nova does since Mitaka.'),
    'vfs-probe': (
        'no mount test of the guest filesystem',
        'LP#1212734',
        'Havana to Juno mounted a qcow2 guest filesystem (libguestfs or nbd) '
        'to test it was partitionless even when resize_fs_using_block_device '
        'was off; imagepipe does not mount guest filesystems for a test.'),
    'ephemeral-resized': (
        'no <name>_<GiB> copy of generated bases',
        'Folsom',
        'Folsom also copied generated ephemeral and swap bases to '
        '<name>_<GiB> in _base; imagepipe overlays the generated base '
        'directly.'),
}


def note(key):
    """The short form a plan step shows."""
    short, ref, _ = DEVIATIONS[key]
    return f'not as Nova ({ref}): {short}'
