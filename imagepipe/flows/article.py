"""Where the article's tables and Nova's code differ; flows follow the code.

The tables of the seed article (pixelbeat.org, "OpenStack libvirt images")
summarize what Nova ran. Reading the code (nova-reference.md section 7) shows
a few places where they simplify; the step concerned carries the note.
"""

#: key -> (section of nova-reference.md, what the code does)
NOTES = {
    'convert-order': (
        '7.3',
        'the .part is removed right after qemu-img convert, before qemu-img '
        'info checks the result; the article lists mv, then rm'),
    'e2fsck-first': (
        '7.5',
        'e2fsck -fp runs before resize2fs, which is all the article lists'),
    'resized-base': (
        '7.6',
        'the resized copy is <hex>_<whole GiB>, and copy, resize and overlay '
        'all run under the one $B/$hex lock'),
    'overlay-fs': (
        '7.7',
        'e2fsck and resize2fs are still run on the qcow2 overlay; they fail '
        'and Nova ignored it, so the filesystem is not grown (LP#1212734)'),
    'preallocate': (
        '7.8',
        'fallocate runs once the disk is made and grown, outside the lock, '
        'after a probe; any preallocate_images value but none enables it'),
}


def note(key):
    """The form a plan step shows."""
    section, text = NOTES[key]
    return f"as Nova's code, not the article (reference {section}): {text}"
