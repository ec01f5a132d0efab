"""Where the article's tables and Nova's code differ; flows follow the code.

The tables of the seed article (pixelbeat.org, "OpenStack libvirt images")
summarize what Nova ran. Reading the code shows a few places where they
simplify; the step concerned carries the note.
"""

#: key -> (the Nova code that shows it, what the code does)
NOTES = {
    'convert-order': (
        'nova/virt/images.py@2012.1.3, fetch_to_raw',
        'the .part is removed right after qemu-img convert, before qemu-img '
        'info checks the result; the article lists mv, then rm'),
    'e2fsck-first': (
        'nova/virt/disk/api.py@2012.1.3, extend',
        'e2fsck -fp runs before resize2fs, which is all the article lists'),
    'resized-base': (
        'nova/virt/libvirt/imagebackend.py@2012.2.4, Qcow2.create_image',
        'the resized copy is <hex>_<whole GiB>, and copy, resize and overlay '
        'all run under the one $B/$hex lock'),
    'overlay-fs': (
        'nova/virt/libvirt/imagebackend.py@2013.1.5, Qcow2.create_image',
        'e2fsck and resize2fs are still run on the qcow2 overlay; they fail '
        'and Nova ignored it, so the filesystem is not grown (LP#1212734)'),
    'preallocate': (
        'nova/virt/libvirt/imagebackend.py@2013.1.5, Image.cache',
        'fallocate runs once the disk is made and grown, outside the lock, '
        'after a probe; any preallocate_images value but none enables it'),
}


def note(key):
    """The form a plan step shows."""
    code, text = NOTES[key]
    return f"as Nova's code, not the article ({code}): {text}"
