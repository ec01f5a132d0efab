"""The backing file an instance disk names, read from its qcow2 header.

Nova asked ``qemu-img info`` for every instance disk on every pass
(nova/virt/libvirt/utils.py get_disk_backing_file); the 20 bytes that hold
the answer are read here instead: magic ``QFI\\xfb``, version (2 or 3),
backing file offset (8 bytes at 8) and length (4 bytes at 16). Like Nova,
only the file name of the backing file counts (it is looked for in the base
directory). The disk is opened without following a link
(:func:`imagepipe.tasks.safefs.open_existing`).
"""

import os
import struct

from imagepipe.tasks import safefs

MAGIC = b'QFI\xfb'
#: QEMU refuses longer backing file names
MAX_NAME = 1023


class Corrupt(Exception):
    """The header says qcow2 but cannot be read as one."""


def backing_name(path):
    """(format, backing file name or None) of the disk at ``path``.

    format is 'qcow2' or 'raw' (anything without the magic). Raises
    :class:`Corrupt`, :class:`~imagepipe.tasks.safefs.UnsafePath` (a link, a
    foreign directory) or OSError (unreadable, gone).
    """
    fd = safefs.open_existing(path)
    try:
        head = os.pread(fd, 20, 0)
        if head[:4] != MAGIC:
            return 'raw', None
        if len(head) < 20:
            raise Corrupt('truncated qcow2 header')
        version, offset, length = struct.unpack('>IQI', head[4:20])
        if version not in (2, 3):
            raise Corrupt(f'qcow2 version {version}')
        if offset == 0:
            return 'qcow2', None
        size = os.fstat(fd).st_size
        if not 0 < length <= MAX_NAME or offset + length > size:
            raise Corrupt(f'backing file name of {length} bytes at {offset} '
                          f'in a file of {size}')
        name = os.pread(fd, length, offset)
    finally:
        os.close(fd)
    if len(name) != length or b'\0' in name:
        raise Corrupt('unreadable backing file name')
    return 'qcow2', os.path.basename(os.fsdecode(name))
