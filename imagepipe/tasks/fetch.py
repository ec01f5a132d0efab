"""Fetch: stream an image from its source into ``$B/$hex.part``.

Nova's ``images.fetch`` downloaded through the Glance client into the
``.part`` file, inside the caller's ``[X $hex]`` lock, and deleted the part on
any error. imagepipe does the same in-process, with three things Nova did not
do: blocks of zeros become holes (a raw image stays sparse,
:mod:`imagepipe.tasks.sparse`), a ``.part`` left
by a crash is continued with a Range request when the source is still the
version the part was begun with (:mod:`imagepipe.sources.identity`), and
the length and checksum the source declares are verified while the bytes go
by. Given the flavor's root disk (``max_size``), it stops as soon as the
image's header shows a larger virtual size, with the inspection's refusal.
"""

import contextlib
import ctypes
import errno
import hashlib
import logging
import os
import queue
import threading

from oslo_utils import excutils

from imagepipe import exception
from imagepipe import sources
from imagepipe import stop
from imagepipe.sources import identity
from imagepipe.sources import resume
from imagepipe.sources.base import CHUNK_SIZE
from imagepipe.tasks import disk_ops as disk_ops_slots
from imagepipe.tasks import formats
from imagepipe.tasks import safefs
from imagepipe.tasks import sparse
from imagepipe.tasks.contract import ImageTask

LOG = logging.getLogger(__name__)

#: Written bytes after which their writeback to disk is started.
WRITEBACK_EVERY = 16 * CHUNK_SIZE

SYNC_FILE_RANGE_WRITE = 2
_sync_file_range = ctypes.CDLL(None, use_errno=True).sync_file_range
_sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_uint)


class Fetch(ImageTask):
    """Download the image unless ``base`` is cached; result names the file."""

    source = 'images.fetch'

    def work(self, image, glance, part, base, max_size=None, disk_ops=None):
        if safefs.existing_file(base, 'use it as the cached image'):
            return {'cached': True, 'path': base}
        src = sources.open_image(image, glance)
        with _removed_on_error(part), disk_ops_slots.slot(disk_ops):
            size = download(src, part, self.report, max_size)
        return {'cached': False, 'path': part, 'size': size,
                'disk_format': src.disk_format,
                'checksum': list(src.checksum) if src.checksum else None}

    def undo(self, result, part, **kwargs):
        safefs.remove(part)

    def preview(self, image, part, base, disk_ops=None, **args):
        return {
            'command': ['GET', image, '-o', part],
            'creates': [part],
            'notes': [
                f"cache key: sha1 of '{image}'",
                f'skipped when {base} exists (checked inside the lock)',
                'downloaded in-process: 4 KiB blocks of zeros left as holes, '
                'a partial .part continued with a Range request only from '
                'the version of the image it was begun with (If-Range with '
                'its ETag or Last-Modified, the Glance checksum, or a local '
                "file's size, mtime and inode), size and checksum verified "
                'when the source declares them',
                *disk_ops_slots.note(disk_ops, 'the download'),
            ],
        }


@contextlib.contextmanager
def _removed_on_error(part):
    """The part goes on any error but a stop request: resume continues it."""
    try:
        yield
    except stop.Stopped:
        raise
    except Exception:
        with excutils.save_and_reraise_exception():
            safefs.remove(part)


def download(source, part, on_progress, max_size=None):
    """Write ``source`` into ``part`` durably; return its verified length.

    A download the source could not continue (it changed, or names no
    version to prove it did not) starts over, once. One whose header shows
    a virtual size over ``max_size`` stops there (FlavorDiskTooSmall).
    """
    limit = (part, max_size) if max_size else None
    fd = safefs.open_or_create(part, safefs.nova_mode(source.mode))
    try:
        try:
            end = _download(source, fd, on_progress, identity.recorded(fd),
                            limit)
        except resume.SourceChanged as e:
            LOG.warning('%s: downloading it again from the start', e)
            end = _download(source, fd, on_progress, None, limit)
        # Durable, but left in the page cache: the convert reads it next,
        # and the pages go with the file once it is converted.
        os.fdatasync(fd)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise exception.NoSpace(
                f'{part}: no space left on device') from None
        raise
    finally:
        os.close(fd)
    return end


def _download(source, fd, on_progress, recorded, limit):
    """The part's bytes from the source, after those of the version
    ``recorded`` it holds; the final length."""
    with source.read(_resume_point(source, fd, recorded), recorded) as stream:
        return _receive(source, stream, fd, _Progress(
            on_progress, source.size or stream.total), limit)


def _resume_point(source, fd, recorded):
    """How many bytes of the part to keep: all, if the source can go on
    from the version they were recorded with."""
    have = os.fstat(fd).st_size
    if recorded is not None and source.supports_range and (
            source.size is None or have <= source.size):
        return have
    return 0


def _receive(source, stream, fd, progress, limit):
    """Write the stream after what the part holds; return the final length.

    The part is cut to where the stream starts first (a server may ignore the
    Range request and start over), so a skipped block of zeros never leaves
    old bytes behind; a part begun anew records the version it holds before
    its first byte. The kept prefix is hashed again, once, so the checksum
    covers the whole image, and shown to the header's first look.
    """
    os.ftruncate(fd, stream.offset)
    if not stream.offset:
        identity.record(fd, stream.identity)
    header = limit and _first_look(limit, source.size or stream.total, fd,
                                   stream.offset)
    hashing = _Hasher(source.checksum[0]) if source.checksum else None
    with hashing or contextlib.nullcontext():
        if hashing:
            for chunk in _read_back(fd, stream.offset):
                hashing.update(chunk)
        end = flushed = stream.offset
        for chunk in stream:
            stop.check('the download')
            if header:
                header = _looked(header, chunk, limit)
            if hashing:
                hashing.update(chunk)
            sparse.write(fd, chunk, end)
            end += len(chunk)
            if end - flushed >= WRITEBACK_EVERY:
                _start_writeback(fd, flushed, end - flushed)
                flushed = end
            progress(end)
    os.ftruncate(fd, end)
    _verify(source, stream, end, hashing)
    return end


def _first_look(limit, length, fd, kept):
    """A look at the header of an image ``length`` bytes long, shown what
    the part kept of it."""
    header = formats.HeaderSize(length)
    for chunk in _read_back(fd, min(kept, formats.HEADER_BYTES)):
        if (header := _looked(header, chunk, limit)) is None:
            break
    return header


def _looked(header, chunk, limit):
    """``header`` shown ``chunk``, None once it has decided; an image
    whose header declares more than the limit is refused (no more chunks
    are read: the stream and its connection close)."""
    header.eat(chunk)
    if not header.done:
        return header
    part, max_size = limit
    if header.virtual_size is not None and header.virtual_size > max_size:
        raise formats.too_large(part, header.virtual_size, max_size)
    return None


def _verify(source, stream, end, hashing):
    expected = source.size if source.size is not None else stream.total
    if expected is not None and end != expected:
        raise exception.ImageUnacceptable(
            f'{source.ref}: got {end} bytes, the source declared {expected}')
    if hashing:
        algo, declared = source.checksum
        got = hashing.hexdigest()
        if got != declared.lower():
            raise exception.ImageUnacceptable(
                f'{source.ref}: {algo} checksum {got} does not match the '
                f'declared {declared}')


def _start_writeback(fd, offset, length):
    """Start writing a range of the part to disk, without waiting for it
    and keeping it in the page cache (the convert reads it next): the
    fdatasync at the end then waits for the last range only, instead of
    the disk writing the whole image after the network is done."""
    _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


def _read_back(fd, length):
    """The first ``length`` bytes of the file, in chunks."""
    for offset in range(0, length, CHUNK_SIZE):
        yield os.pread(fd, min(CHUNK_SIZE, length - offset), offset)


class _Progress:
    """Report the fraction done and the bytes, when the total is known."""

    def __init__(self, report, total):
        self._report = report
        self._total = total

    def __call__(self, done):
        if self._total:
            self._report(done / self._total, done=done, total=self._total)


class _Hasher:
    """Hash chunks in a worker thread, overlapping network and disk.

    hashlib releases the GIL on large updates: hashing md5 in a thread slows a
    loopback download by about 28%, inline by about 118%. The queue is bounded,
    so a hash slower than the network holds the download back instead of
    piling chunks up in memory.
    """

    def __init__(self, algo):
        try:
            self._hash = hashlib.new(algo, usedforsecurity=False)
        except ValueError:
            raise exception.SourceError(
                f'unsupported checksum algorithm {algo!r}') from None
        self._queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._queue.put(None)
        self._thread.join()

    def _run(self):
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk):
        self._queue.put(chunk)

    def hexdigest(self):
        """The digest; only valid after the ``with`` block ended."""
        return self._hash.hexdigest()
