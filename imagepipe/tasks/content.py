"""Whether a downloaded image holds what its header promises.

Three cheap checks on a fresh ``.part`` before anything converts it:

- at least one 512-byte sector: qemu-img reads a shorter file as a raw disk
  of one sector of zeros;
- some data: a raw "image" whose every byte is zero (the download wrote its
  zeros as holes, so ``SEEK_DATA`` answers at once) makes a disk of zeros;
- for qcow2, every table and cluster the active L1/L2 tables point at lies
  inside the file. A qcow2 cut inside its last clusters passes the format
  inspector and ``qemu-img check`` alike, and converts to a disk whose tail
  is zeros. ``qemu-img check`` reports where the last allocated cluster
  ends (``image-end-offset``); only a file shorter than that is walked here:
  a legitimate one ends inside its last cluster when that is a short L1
  table, a compressed cluster or a partly written sub-clustered one.
"""

import array
import errno
import os
import struct
import sys

SECTOR = 512

#: Offset bits of an L1 entry and of a standard L2 entry.
OFFSET_MASK = 0x00fffffffffffe00
COMPRESSED = 1 << 62
ZERO_FLAG = 1
#: incompatible feature bit: 16-byte L2 entries with a sub-cluster bitmap
EXTENDED_L2 = 1 << 4

_HEADER = struct.Struct('>4sIQIIQIIQ')


class Truncated(ValueError):
    """What of the image lies beyond the end of the file."""


def too_small(size):
    """The reason a file of ``size`` bytes is no image, or None."""
    if size < SECTOR:
        return f'{size} bytes, less than one {SECTOR}-byte sector'
    return None


def first_data(path, block=64 * 1024):
    """Offset of the first non-zero byte of ``path``, None if there is none.

    Holes are skipped with ``SEEK_DATA``; a data block is read only until a
    non-zero byte shows, which for an image is its first block.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while True:
            try:
                offset = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    return None
                raise
            end = os.lseek(fd, offset, os.SEEK_HOLE)
            while offset < end:
                chunk = os.pread(fd, min(block, end - offset), offset)
                if not chunk:
                    return None
                stripped = chunk.lstrip(b'\0')
                if stripped:
                    return offset + len(chunk) - len(stripped)
                offset += len(chunk)
    finally:
        os.close(fd)


def check_qcow2_extent(path, image_end):
    """Raise Truncated when ``path`` ends before data its tables map.

    ``image_end`` is ``qemu-img check``'s image-end-offset: a file at least
    that long holds every allocated cluster, and is not read here.
    """
    size = os.path.getsize(path)
    if image_end is None or size >= image_end:
        return
    with open(path, 'rb') as f:
        _Walk(f, size).check()


class _Walk:
    """The active L1 table, its L2 tables and their clusters, against the
    file size (snapshots are not converted, so not walked)."""

    def __init__(self, f, size):
        self.f, self.size = f, size
        (_, version, _, _, cluster_bits, self.vsize, _, l1_size,
         l1_offset) = _HEADER.unpack(f.read(_HEADER.size))
        self.cluster = 1 << cluster_bits
        self.cluster_bits = cluster_bits
        features = 0
        if version >= 3:
            f.seek(72)
            features = struct.unpack('>Q', f.read(8))[0]
        self.entry = 16 if features & EXTENDED_L2 else 8
        self.l1_size, self.l1_offset = l1_size, l1_offset

    def need(self, end, what):
        if end > self.size:
            raise Truncated(f'{what} ends at byte {end}, the file at byte '
                            f'{self.size}')

    def table(self, offset, count):
        self.f.seek(offset)
        words = array.array('Q', self.f.read(count * 8))
        if sys.byteorder == 'little':
            words.byteswap()
        return words

    def check(self):
        self.need(self.l1_offset + self.l1_size * 8, 'the L1 table')
        per_l2 = self.cluster // self.entry
        span = per_l2 * self.cluster  # guest bytes one L2 table maps
        for index, l1 in enumerate(self.table(self.l1_offset, self.l1_size)):
            l2_offset = l1 & OFFSET_MASK
            if not l2_offset:
                continue
            guest = index * span
            count = min(per_l2, -(-(self.vsize - guest) // self.cluster))
            if count <= 0:
                continue
            words = count * self.entry // 8
            self.need(l2_offset + words * 8,
                      f'the L2 table for guest byte {guest}')
            self.clusters(self.table(l2_offset, words), guest)

    def clusters(self, words, guest):
        step = self.entry // 8
        for i in range(0, len(words), step):
            entry = words[i]
            at = guest + (i // step) * self.cluster
            if entry & COMPRESSED:
                self.need(self.compressed_end(entry) - SECTOR + 1,
                          f'the compressed cluster of guest byte {at}')
                continue
            offset = entry & OFFSET_MASK
            if not offset or (entry & ZERO_FLAG and step == 1):
                continue
            length = min(self.cluster, self.vsize - at)
            if step == 2:
                length = min(length, self.allocated(words[i + 1]))
            if length > 0:
                self.need(offset + length,
                          f'the data cluster of guest byte {at}')

    def compressed_end(self, entry):
        """End of the sectors a compressed cluster's descriptor names."""
        shift = 62 - (self.cluster_bits - 8)
        offset = entry & ((1 << shift) - 1)
        sectors = ((entry >> shift) & ((1 << (62 - shift)) - 1)) + 1
        return (offset & ~(SECTOR - 1)) + sectors * SECTOR

    def allocated(self, bitmap):
        """Bytes up to the last allocated sub-cluster (extended L2)."""
        alloc = bitmap & 0xffffffff
        return alloc.bit_length() * (self.cluster // 32)
