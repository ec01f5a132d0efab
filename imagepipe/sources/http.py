"""An image served over HTTP(S), and the HTTP helpers Glance shares.

No HEAD request is made: the GET response says how long the body is, and a
``Range: bytes=N-`` request answered 206 continues a partial download while an
answer of 200 (a server that ignores Range) starts it over. The Range comes
with ``If-Range`` naming the version the partial download began with (its
strong ETag, else its Last-Modified date), so a server whose image changed
sends the new one whole; an answer whose version is not the one asked for
starts over too, and without a version to name a download is not continued
at all. A connection that breaks is continued the same way
(:mod:`imagepipe.sources.resume`).

The body must come unencoded: ``Accept-Encoding: identity`` is sent, and an
answer with any other ``Content-Encoding`` is refused (a gzipped image would
otherwise be stored as the image). Credentials come from the URL as typed in
this process or from netrc (:mod:`imagepipe.sources.credentials`) and are
sent with HTTP Basic authentication, to the host named only (not on a
redirect).
"""

import http.client
import re
import urllib.error
import urllib.request

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import credentials
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

#: What the user can do about an HTTP error status: said after it.
STATUS_HINTS = {
    404: 'check the image reference',
}


#: What reading a response body raises when the connection breaks.
READ_ERRORS = (OSError, http.client.HTTPException)


class HttpImage(base.ImageSource):
    """``ref``, an http(s) URL; ``settings`` may give ``download_retries``.

    ``ref`` is shown and stored without the credentials it may carry.
    """

    supports_range = True

    def __init__(self, ref, settings=None):
        super().__init__(credentials.keep(ref))
        self.retries = resume.retries_of(settings)
        self._url, user, password, self._auth_origin = credentials.for_url(
            self.ref)
        self._auth = None if user is None else credentials.basic_auth(
            user, password)

    def read(self, offset=0, identity=None):
        return resume.ResumingBody(self.ref, self._open_at, offset,
                                   self.retries, READ_ERRORS,
                                   identity=identity).stream()

    def _open_at(self, offset, identity):
        response = self._get(offset, if_range(identity))
        try:
            start, total = content_range(self.ref, response.status,
                                         response.headers, offset)
        except exception.SourceError:
            response.close()
            raise
        return response, start, total, identity_of(response.headers)

    def _get(self, offset, version):
        """GET from byte ``offset`` on (if still ``version``); SourceError
        in one line if not.

        A request past the end (416: the partial file is at least as long as
        the image) is repeated without Range, so the download starts over.
        """
        request = urllib.request.Request(
            self._url, headers={'Accept-Encoding': 'identity'})
        if self._auth:
            request.add_unredirected_header('Authorization', self._auth)
        if offset:
            request.add_header('Range', f'bytes={offset}-')
            if version:
                request.add_header('If-Range', version)
        try:
            response = urllib.request.urlopen(request, timeout=TIMEOUT)
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 416 and offset:
                return self._get(0, None)
            raise exception.SourceError(
                f'{self.ref}: {self._status_words(e.code, e.reason)}'
            ) from None
        except (OSError, http.client.HTTPException) as e:
            reason = getattr(e, 'reason', None) or e
            raise base.Unreachable(
                f'{self.ref}: unreachable: {reason}') from None
        if response.status == 204:
            response.close()
            raise exception.SourceError(
                f'{self.ref}: no image data (HTTP 204)')
        return response

    def _status_words(self, code, reason):
        words = f'{STATUS_WORDS.get(code, reason)} (HTTP {code})'
        if code in STATUS_HINTS:
            return f'{words}: {STATUS_HINTS[code]}'
        if code != 401:
            return words
        if self._auth_origin is None:
            return f'{words}: {credentials.WHERE_TO_PUT_THEM}'
        return (f'{words}: the server refused the credentials from '
                f'{self._auth_origin}')


def identity_of(headers):
    """The version an answer names: its strong ETag, else Last-Modified."""
    etag = headers.get('ETag')
    if etag and not etag.startswith('W/'):
        return {'etag': etag}
    modified = headers.get('Last-Modified')
    return {'last_modified': modified} if modified else None


def if_range(identity):
    """The If-Range value naming the version ``identity`` describes."""
    identity = identity or {}
    return identity.get('etag') or identity.get('last_modified')


def content_range(url, status, headers, offset, size=None):
    """(first byte, image size) of a 200 or 206 answer to a request from
    ``offset``; ``size``: the declared size, when the answer does not say.

    An answer whose body is encoded (gzip...) is refused: its bytes are not
    the image.
    """
    encoding = (headers.get('Content-Encoding') or 'identity').strip()
    if encoding.lower() != 'identity':
        raise exception.SourceError(
            f'{url}: the server sent the image with Content-Encoding '
            f'{encoding!r}; only the unencoded image is accepted')
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
