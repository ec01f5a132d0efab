"""The last step of every flow: the disks the run made are there, whole.

A run is marked successful only after this step, so a resumed run whose
disk was removed, or replaced by something else, while it was stopped fails
here instead of reporting success. Nothing runs a tool: a qcow2 disk is read
up to the end of its header (oslo.utils' format inspector), a raw file is
measured with ``stat`` and a block device by seeking to its end.
"""

import os
import stat

from oslo_utils.imageutils import format_inspector

from imagepipe import exception
from imagepipe.tasks import contract


class DiskNotMade(exception.ImagepipeError):
    """A disk the run claims to have made is missing or not what it was."""


def disk(path, fmt, size):
    """One disk to check: ``fmt`` 'qcow2', 'raw' or None (either); ``size``
    the least virtual size in bytes, None for no minimum."""
    return {'path': path, 'format': fmt, 'size': size}


def _kind(path):
    """'file' or 'device'; DiskNotMade when it is neither."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DiskNotMade(f'instance disk {path} is missing') from None
    if stat.S_ISREG(mode):
        return 'file'
    if stat.S_ISBLK(mode):
        return 'device'
    raise DiskNotMade(f'instance disk {path} is not a regular file or a '
                      'block device')


def _length(path, kind):
    if kind == 'file':
        return os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def _qcow2(path):
    """The qcow2 header's inspector, None when ``path`` is no qcow2."""
    try:
        return format_inspector.QcowInspector.from_file(path)
    except format_inspector.ImageFormatError:
        return None


def _backing_file(path):
    """The backing file a qcow2 header names, None if it names none."""
    with open(path, 'rb') as f:
        head = f.read(20)
        offset = int.from_bytes(head[8:16], 'big')
        length = int.from_bytes(head[16:20], 'big')
        if not offset:
            return None
        f.seek(offset)
        return os.fsdecode(f.read(length))


def _measure(path, fmt):
    """(format, virtual size) of a disk as ``fmt`` expects it."""
    kind = _kind(path)
    qcow2 = _qcow2(path) if fmt != 'raw' and kind == 'file' else None
    if fmt == 'qcow2' and qcow2 is None:
        raise DiskNotMade(f'instance disk {path} is not a qcow2 image')
    if qcow2 is None:
        return 'raw', _length(path, kind)
    backing = _backing_file(path)
    if backing:  # qemu-img reads a relative name from the disk's directory
        backing = os.path.join(os.path.dirname(path), backing)
    if backing and not os.path.exists(backing):
        raise DiskNotMade(f'instance disk {path} is backed by {backing}, '
                          'which is missing')
    return 'qcow2', qcow2.virtual_size


def _check(entry):
    path, size = entry['path'], entry['size']
    fmt, virtual = _measure(path, entry['format'])
    if size and virtual < size:
        raise DiskNotMade(f'instance disk {path} is {virtual} bytes, '
                          f'smaller than the {size} bytes asked for')
    return {'path': path, 'format': fmt, 'virtual_size': virtual}


class VerifyDisks(contract.ImageTask):
    """Every instance disk of the flow exists with its format and size."""

    source = 'imagepipe only'
    notes = ('Nova trusted the files it had just made; a '
             'resumed run checks them before it says it succeeded',)

    def work(self, disks):
        return {'disks': [_check(entry) for entry in disks]}

    def preview(self, disks, **_):
        notes = []
        for entry in disks:
            what = entry['format'] or 'raw or qcow2'
            least = (f', at least {entry["size"]} bytes' if entry['size']
                     else '')
            notes.append(f'{entry["path"]}: {what}{least}')
        return {'command': None, 'notes': notes}
