"""A download that goes on after its connection breaks.

An HTTP(S) or Glance image is read through :class:`ResumingBody`: a read
that fails, or a body that ends early, closes the response and asks again
from the next byte with a Range request, up to ``retries`` times per
download with a doubling delay between attempts. Fetch sees one unbroken
stream, or a :class:`DownloadCut` naming where and why once the retries are
spent. (Fetch also continues a ``.part`` after a crash; this is the same
inside one run.)

A continuation must come from the version of the image the download began
with: when the answer names another version, or the first answer named
none, the bytes already handed over cannot be trusted to belong with the
rest, and :class:`SourceChanged` tells Fetch to start over.
"""

import logging
import time

from imagepipe import exception
from imagepipe.sources import base

LOG = logging.getLogger(__name__)

#: Continuations of an interrupted download when the settings do not say.
DEFAULT_RETRIES = 3

#: Seconds before the first continuation; doubled for each next one, so the
#: default three retries wait 2, 4 and 8 s: a restarting server is back.
RETRY_DELAY = 2.0

#: The longest wait between two continuations.
MAX_RETRY_DELAY = 30.0


class DownloadCut(exception.SourceError):
    """The download broke off and could not be continued; ``position`` is
    the first byte not received (the .part is good up to there)."""

    def __init__(self, message, position):
        super().__init__(message)
        self.position = position


class SourceChanged(exception.SourceError):
    """A download cannot be continued: the source is not (or cannot be
    shown to be) the version it began with."""


def retries_of(settings):
    """The ``download_retries`` of a source's settings dict, or the default."""
    retries = (settings or {}).get('download_retries')
    return DEFAULT_RETRIES if retries is None else int(retries)


class ResumingBody:
    """The body of ``ref`` from ``offset`` on, read like a file.

    ``open_at(position, identity)`` asks the server for the bytes from
    ``position`` on if the image is still the version ``identity`` names,
    and returns ``(reader, start, total, identity)``: something with
    ``read1(n)`` and ``close()``, the first byte it will give (0 from a
    server that ignored the Range request or has another version), the
    image size if known and the version it sends; it raises
    :class:`base.Unreachable` when the server cannot be reached.
    ``read_errors`` are what a broken connection raises while reading,
    ``reason(error)`` words one for the error line. ``size`` is the image
    size the source declared, if any. ``opened`` says the server answered
    a moment ago (Glance's metadata): failing to reach it for the first
    byte is then a cut too. ``identity`` is the version ``offset`` was
    reached with: without one the download starts at 0.
    """

    def __init__(self, ref, open_at, offset, retries, read_errors,
                 reason=str, size=None, opened=False, identity=None):
        self.ref = ref
        self.open_at = open_at
        self.retries = retries
        self.retries_left = retries
        self.read_errors = read_errors
        self.reason = reason
        self.attempt = 0
        self.reader = None
        self._skip = 0
        if identity is None:
            offset = 0
        try:
            self.reader, self.start, self.total, self.identity = (
                self._first(offset, identity))
        except base.Unreachable as e:
            if not opened:
                raise
            self.start, self.total, self.identity = offset, size, identity
            self.position = offset
            self._continue(str(e))
        else:
            self.position = self.start

    def _first(self, offset, identity):
        """The first answer; from 0 if it is not the version asked for
        (a server that ignored If-Range)."""
        reader, start, total, got = self.open_at(offset, identity)
        if start and got != identity:
            reader.close()
            LOG.info('%s: not the version the partial download began with; '
                     'starting over', self.ref)
            reader, start, total, got = self.open_at(0, None)
        return reader, start, total, got

    def stream(self):
        """The body as a :class:`base.Stream`."""
        length = None if self.total is None else self.total - self.start
        return base.Stream(self.ref, self, self.start, self.total, length,
                           identity=self.identity)

    def read1(self, size):
        while True:
            try:
                data = self.reader.read1(size) or b''
            except self.read_errors as e:
                why = self.reason(e)
            else:
                if self._skip and data:
                    drop = min(self._skip, len(data))
                    self._skip -= drop
                    data = data[drop:]
                    if not data:
                        continue
                if data or self.total is None or self.position >= self.total:
                    self.position += len(data)
                    return data
                why = 'the connection was closed'
            self.reader.close()
            self.reader = None
            self._continue(why)

    def _continue(self, cause):
        """Reopen the download at ``position``, or fail after the retries."""
        position = self.position
        of = f' of {self.total}' if self.total is not None else ''
        if self.identity is None and position:
            raise SourceChanged(
                f'{self.ref}: download cut at byte {position}{of} ({cause}); '
                'the source names no version (ETag, Last-Modified or '
                'checksum) the rest could be proven to belong to')
        why = cause
        while self.retries_left > 0:
            self.retries_left -= 1
            self.attempt += 1
            delay = min(RETRY_DELAY * 2 ** (self.attempt - 1),
                        MAX_RETRY_DELAY)
            LOG.warning('%s: download cut at byte %d%s (%s); continuing '
                        'with a Range request in %.0fs (retry %d of %d)',
                        self.ref, position, of, why, delay, self.attempt,
                        self.retries)
            time.sleep(delay)
            try:
                reader, start, total, identity = self.open_at(
                    position, self.identity)
            except base.Unreachable as e:
                why = str(e)
                continue
            if identity != self.identity:
                reader.close()
                raise SourceChanged(
                    f'{self.ref}: the image changed during the download '
                    f'(cut at byte {position}{of})')
            if None not in (self.total, total) and total != self.total:
                reader.close()
                raise exception.SourceError(
                    f'{self.ref}: the image was {self.total} bytes, now '
                    f'{total}')
            self.total = self.total if total is None else total
            self._skip = position - start   # a server that ignored Range
            self.reader = reader
            return
        last = f'; last: {why}' if why != cause else ''
        raise DownloadCut(
            f'{self.ref}: download cut at byte {position}{of} ({cause}); '
            f'gave up after {self.retries} Range retries{last}', position)

    def close(self):
        if self.reader is not None:
            self.reader.close()
