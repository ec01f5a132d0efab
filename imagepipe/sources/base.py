"""What every image source offers: metadata and a stream of chunks."""

import http.client

from oslo_utils import units

from imagepipe import exception

#: Bytes per chunk a source yields: large enough that a chunk costs little
#: Python per byte (perf-baseline.md).
CHUNK_SIZE = 1 * units.Mi


class Unreachable(exception.SourceError):
    """The server could not be reached at all (worth trying another one)."""


def chunks(read, size=CHUNK_SIZE):
    """Regroup what ``read(n)`` returns into ``size``-byte chunks.

    Only the last chunk may be shorter, so zero-skipping works on aligned
    blocks whatever sizes the transport hands over.
    """
    while chunk := read(size):
        while len(chunk) < size and (more := read(size - len(chunk))):
            chunk += more
        yield chunk


class Stream:
    """The bytes of a source from ``offset`` on, in CHUNK_SIZE chunks.

    ``offset`` is where the bytes really start: a server that ignores a Range
    request sends the whole image, and ``offset`` is then 0. ``total`` is the
    size of the whole image when the transport tells it. When ``length`` (the
    bytes promised from ``offset`` on) is known, a shorter stream is an error.
    Use it as a context manager so the file or connection gets closed.
    """

    def __init__(self, name, fileobj, offset=0, total=None, length=None):
        self.name = name
        self.offset = offset
        self.total = total
        self._file = fileobj
        self._length = length

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()

    def __iter__(self):
        got = 0
        try:
            for chunk in chunks(self._file.read):
                got += len(chunk)
                yield chunk
        except (OSError, http.client.HTTPException) as e:
            raise exception.SourceError(
                f'{self.name}: read failed at byte {self.offset + got}: {e}'
            ) from None
        if self._length is not None and got != self._length:
            raise exception.SourceError(
                f'{self.name}: source ended after {self.offset + got} of '
                f'{self.offset + self._length} bytes')


class ImageSource:
    """Where the bytes of one image come from.

    ``size`` and ``checksum`` (``(algo, hexdigest)``) are what the source
    declares before any byte is read (None when it does not say);
    ``disk_format`` is the declared format; ``supports_range`` says whether
    ``read(offset)`` with an offset is worth asking for. ``mode`` is the
    permission bits of a local file (None: readable by anyone), which the
    cached copy must not widen.
    """

    mode = None
    size = None
    checksum = None
    disk_format = None
    supports_range = False

    def __init__(self, ref):
        self.ref = ref

    def read(self, offset=0):
        """A :class:`Stream` of the image from ``offset`` on."""
        raise NotImplementedError
