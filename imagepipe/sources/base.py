"""What every image source offers: metadata and a stream of chunks."""

import http.client
import time

from oslo_utils import units

from imagepipe import exception
from imagepipe import stop

#: Bytes per chunk a source yields on a fast link: large enough that the
#: Python work done per chunk is small against the bytes it carries.
CHUNK_SIZE = 1 * units.Mi

#: Seconds after which the bytes received so far are handed over even when
#: they fill less than a chunk: on a slow link they reach the disk and the
#: progress report at once instead of after a whole chunk (17 minutes at
#: 1 KiB/s).
HAND_OVER_AFTER = 1.0


class Unreachable(exception.SourceError):
    """The server could not be reached at all (worth trying another one)."""


def chunks(read1, size=CHUNK_SIZE):
    """Regroup what ``read1(n)`` returns into ``size``-byte chunks.

    ``read1`` returns what the transport has (at most ``n`` bytes, at least
    one until the end), as ``io.BufferedReader.read1`` does. A chunk is
    handed over when it is full, when the stream ends, or when
    HAND_OVER_AFTER has passed since its first byte came. Fetch's
    zero-skipping works on chunks of any length and alignment. A stop
    request (:mod:`imagepipe.stop`) is seen after every read.
    """
    while piece := read1(size):
        if len(piece) < size:
            pieces, have = [piece], len(piece)
            until = time.monotonic() + HAND_OVER_AFTER
            while (have < size and time.monotonic() < until
                   and not stop.requested()
                   and (more := read1(size - have))):
                pieces.append(more)
                have += len(more)
            piece = b''.join(pieces)
        stop.check('the download')
        yield piece


class Stream:
    """The bytes of a source from ``offset`` on, in chunks.

    ``offset`` is where the bytes really start: a server that ignores a Range
    request sends the whole image, and ``offset`` is then 0, as it is when
    the source is no longer the version asked for. ``total`` is the size of
    the whole image when the transport tells it. When ``length`` (the bytes
    promised from ``offset`` on) is known, a shorter stream is an error.
    ``identity`` names the version of the image being read
    (:mod:`imagepipe.sources.identity`), None when the source gives none.
    Use it as a context manager so the file or connection gets closed.
    """

    def __init__(self, name, fileobj, offset=0, total=None, length=None,
                 identity=None):
        self.name = name
        self.offset = offset
        self.total = total
        self.identity = identity
        self._file = fileobj
        self._length = length

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self._file.close()

    def __iter__(self):
        got = 0
        try:
            for chunk in chunks(self._file.read1):
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

    def read(self, offset=0, identity=None):
        """A :class:`Stream` of the image from ``offset`` on.

        It starts at ``offset`` only if the source still serves the version
        ``identity`` names (what an earlier stream's ``identity`` was), and
        at 0 otherwise, or when ``identity`` is None.
        """
        raise NotImplementedError
