"""Writing a chunk of an image with its blocks of zeros left as holes, so
that a raw image stays as sparse as it was made."""

import os

from imagepipe.sources.base import CHUNK_SIZE

_ZERO_CHUNK = bytes(CHUNK_SIZE)

#: Zeros inside a chunk are left as holes this size and aligned so: the
#: block of the filesystems imagepipe writes to.
BLOCK = 4096
_ZERO_BLOCK = bytes(BLOCK)


def _is_zero(chunk):
    # bytes == bytes is one memcmp; comparing memoryviews is far slower.
    if len(chunk) == CHUNK_SIZE:
        return chunk == _ZERO_CHUNK
    return chunk == bytes(len(chunk))


def write(fd, chunk, offset):
    """Write ``chunk`` at ``offset``, its aligned blocks of zeros as holes.

    Only the part after the stream's start is written, which the part was
    cut to: a hole there reads as zeros. The chunk may have any length and
    start anywhere (a slow link hands over short ones): blocks are aligned
    on the file, and a block cut by the chunk's edge is zero-skipped in
    each piece on its own.
    """
    if _is_zero(chunk):
        return
    if _ZERO_BLOCK not in chunk and not _zero_edge(chunk, offset):
        # one search: the common case for data
        _pwrite(fd, chunk, offset)
        return
    view = memoryview(chunk)
    start = None  # where the data not written yet begins
    pos = 0
    edge = min(len(chunk), -offset % BLOCK or BLOCK)
    while pos < len(chunk):
        block = chunk[pos:edge]
        if block == _ZERO_BLOCK[:len(block)]:
            if start is not None:
                _pwrite(fd, view[start:pos], offset + start)
                start = None
        elif start is None:
            start = pos
        pos, edge = edge, min(edge + BLOCK, len(chunk))
    if start is not None:
        _pwrite(fd, view[start:], offset + start)


def _zero_edge(chunk, offset):
    """Whether a block the chunk holds only part of is zeros in it (the
    rest of that block may be zeros too: it must be left as a hole)."""
    head = -offset % BLOCK
    tail = (offset + len(chunk)) % BLOCK
    return bool(head and chunk[:head] == _ZERO_BLOCK[:head]
                or tail and chunk[-tail:] == _ZERO_BLOCK[:tail])


def _pwrite(fd, data, offset):
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written
