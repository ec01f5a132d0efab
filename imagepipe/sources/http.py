"""An image served over HTTP(S), and the HTTP helpers Glance shares.

No HEAD request is made: the GET response says how long the body is, and a
``Range: bytes=N-`` request answered 206 continues a partial download while an
answer of 200 (a server that ignores Range) starts it over. A connection that
breaks is continued the same way (:mod:`imagepipe.sources.resume`).
"""

import http.client
import re
import urllib.error
import urllib.request

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import resume

#: Seconds a connection may stay silent before the download fails.
TIMEOUT = 60

#: A 206 answer's ``Content-Range``: first byte, total length.
CONTENT_RANGE = re.compile(r'bytes (\d+)-\d+/(\d+|\*)')

#: How an HTTP error status reads in an error line.
STATUS_WORDS = {
    401: 'authentication required',
    403: 'access forbidden',
    404: 'not found',
}


#: What reading a response body raises when the connection breaks.
READ_ERRORS = (OSError, http.client.HTTPException)


class HttpImage(base.ImageSource):
    """``ref``, an http(s) URL; ``settings`` may give ``download_retries``."""

    supports_range = True

    def __init__(self, ref, settings=None):
        super().__init__(ref)
        self.retries = resume.retries_of(settings)

    def read(self, offset=0):
        return resume.ResumingBody(self.ref, self._open_at, offset,
                                   self.retries, READ_ERRORS).stream()

    def _open_at(self, offset):
        response = open_url(self.ref, offset=offset)
        try:
            start, total = content_range(self.ref, response.status,
                                         response.headers, offset)
        except exception.SourceError:
            response.close()
            raise
        return response, start, total


def open_url(url, headers=None, offset=0):
    """GET ``url`` from byte ``offset`` on; SourceError in one line if not.

    A request past the end (416: the partial file is at least as long as the
    image) is repeated without Range, so the download starts over.
    """
    request = urllib.request.Request(url, headers=headers or {})
    if offset:
        request.add_header('Range', f'bytes={offset}-')
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:
            return open_url(url, headers)
        what = STATUS_WORDS.get(e.code, e.reason)
        raise exception.SourceError(
            f'{url}: {what} (HTTP {e.code})') from None
    except (OSError, http.client.HTTPException) as e:
        reason = getattr(e, 'reason', None) or e
        raise base.Unreachable(f'{url}: unreachable: {reason}') from None
    if response.status == 204:
        response.close()
        raise exception.SourceError(f'{url}: no image data (HTTP 204)')
    return response


def content_range(url, status, headers, offset, size=None):
    """(first byte, image size) of a 200 or 206 answer to a request from
    ``offset``; ``size``: the declared size, when the answer does not say."""
    if status != 206:
        length = headers.get('Content-Length')
        return 0, int(length) if length else size
    found = CONTENT_RANGE.match(headers.get('Content-Range', ''))
    if not found or int(found.group(1)) != offset:
        raise exception.SourceError(
            f'{url}: asked for bytes from {offset} on, got Content-Range '
            f'{headers.get("Content-Range")!r}')
    total = found.group(2)
    return offset, int(total) if total.isdigit() else size
