"""A real threaded HTTP server on 127.0.0.1 for the tests and benchmarks.

It serves files from a directory with Range support, and a minimal Glance v2
image API (``/v2/images/{id}`` and ``/v2/images/{id}/file``) for the images
registered with :meth:`Server.add_image`. It records every request and the
body bytes it sent; it can ignore Range, cut a response after a number of
body bytes, throttle the bytes it sends (``rate``, bytes a second), listen on
a given port (to come back where it was after a stop) and demand a token or
HTTP Basic credentials.

A file is sent as nginx and Apache send a static file: with a strong
``ETag`` (Apache's inode-size-mtime, to the microsecond) and a
``Last-Modified`` date, and a ``Range`` request with an ``If-Range`` naming
another version of the file is answered 200 with the whole file.
``validators=False`` leaves both headers out (a server that cannot tell
versions apart); ``if_range=False`` ignores If-Range (a server that would
splice). ``encoding`` is sent as ``Content-Encoding`` of every file,
whatever the request accepts; ``'gzip'`` gzips the body too (a misbehaving
server).
Unless it is to cut or gzip responses, it sends files with ``sendfile``, so
that it is not the bottleneck of what it serves.
"""

import base64
import email.utils
import gzip
import http.server
import io
import json
import os
import re
import threading
import time

_RANGE = re.compile(r'bytes=(\d+)-(\d*)$')
_IMAGE = re.compile(r'/v2/images/([^/]+)(/file)?$')
PIECE = 64 * 1024


def _piece(rate):
    """Bytes sent at once: a tenth of a second's worth under a throttle,
    so that a slow link trickles as a real one does."""
    return min(PIECE, max(1, rate // 10)) if rate else PIECE


class Server:
    """Use as a context manager; ``url(name)`` is the URL of a served file."""

    def __init__(self, root, cut_after=None, ignore_range=False, token=None,
                 rate=None, port=0, validators=True, if_range=True,
                 basic=None, encoding=None):
        self.root = str(root)
        self.cut_after = cut_after        # body bytes sent before a cut
        self.ignore_range = ignore_range
        self.token = token
        self.validators = validators      # send ETag and Last-Modified
        self.if_range = if_range          # honour If-Range
        self.basic = basic                # (user, password) to demand
        self.encoding = encoding          # Content-Encoding of every file
        self.rate = rate                  # body bytes a second, None: no cap
        self.images = {}
        self.requests = []
        self.bodies = []                  # body bytes sent, per request
        self.sent = 0
        self._mark = 0
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', port),
                                                      _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.01},
                                        daemon=True)

    @property
    def base_url(self):
        return f'http://127.0.0.1:{self._httpd.server_address[1]}'

    @property
    def port(self):
        return self._httpd.server_address[1]

    def url(self, name):
        return f'{self.base_url}/{name}'

    def add_image(self, image_id, filename, **meta):
        """Serve ``filename`` (under root) as Glance image ``image_id``."""
        self.images[image_id] = (filename, {'id': image_id,
                                            'status': 'active', **meta})

    def reset(self):
        """From now on, :meth:`gets` leaves out the requests seen so far."""
        with self._lock:
            self._mark = len(self.requests)

    def ranges(self):
        """The Range header of every request (None when absent)."""
        return [r['range'] for r in self.requests]

    def header(self, name):
        """Header ``name`` of every request (None when absent)."""
        return [r['headers'].get(name) for r in self.requests]

    def gets(self, name=None):
        """The GET requests since the last :meth:`reset` (of ``/name`` when
        given), each with the body bytes sent for it under ``sent``."""
        with self._lock:
            seen = zip(self.requests[self._mark:], self.bodies[self._mark:])
            return [{**r, 'sent': sent} for r, sent in seen
                    if r['method'] == 'GET'
                    and (name is None or r['path'] == f'/{name}')]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        with owner._lock:
            self.index = len(owner.requests)
            owner.requests.append({'method': 'GET', 'path': self.path,
                                   'range': self.headers.get('Range'),
                                   'headers': dict(self.headers)})
            owner.bodies.append(0)
        if owner.token and self.headers.get('X-Auth-Token') != owner.token:
            return self.send_error(401)
        if owner.basic and not self._authorized(owner.basic):
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="images"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        found = _IMAGE.match(self.path)
        if not found:
            return self._send_file(self.path.lstrip('/'))
        image = owner.images.get(found.group(1))
        if image is None:
            return self.send_error(404)
        filename, meta = image
        if found.group(2):
            return self._send_file(filename)
        body = json.dumps(meta).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self, basic):
        kind, _, value = (self.headers.get('Authorization') or '').partition(
            ' ')
        return kind == 'Basic' and value == base64.b64encode(
            ':'.join(basic).encode()).decode()

    def _validators(self, st):
        """ETag and Last-Modified of a file, as Apache makes them."""
        return (f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns // 1000:x}"',
                email.utils.formatdate(st.st_mtime, usegmt=True))

    def _range_applies(self, validators):
        """RFC 9110 If-Range: the Range holds only for the same version."""
        condition = self.headers.get('If-Range')
        if condition is None or not self.server.owner.if_range:
            return True
        return validators is not None and condition in validators

    def _send_file(self, name):
        owner = self.server.owner
        path = os.path.join(owner.root, name)
        if not os.path.isfile(path):
            return self.send_error(404)
        if owner.encoding == 'gzip':
            return self._send_gzip(path)
        with open(path, 'rb') as f:
            self._send_open_file(f)

    def _send_gzip(self, path):
        with open(path, 'rb') as f:
            body = gzip.compress(f.read())
        self.send_response(200)
        self.send_header('Content-Encoding', 'gzip')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self._copy(io.BytesIO(body), len(body))

    def _send_open_file(self, f):
        owner = self.server.owner
        st = os.fstat(f.fileno())
        size = st.st_size
        validators = self._validators(st) if owner.validators else None
        start, end = 0, size
        wanted = _RANGE.match(self.headers.get('Range') or '')
        if (wanted and not owner.ignore_range
                and self._range_applies(validators)):
            start = int(wanted.group(1))
            if wanted.group(2):
                end = min(int(wanted.group(2)) + 1, size)
            if start >= size:
                self.send_response(416)
                self.send_header('Content-Range', f'bytes */{size}')
                self.send_header('Content-Length', '0')
                self.end_headers()
                return
            self.send_response(206)
            self.send_header('Content-Range',
                             f'bytes {start}-{end - 1}/{size}')
        else:
            self.send_response(200)
        self.send_header('Content-Length', str(end - start))
        self.send_header('Content-Type', 'application/octet-stream')
        if owner.encoding:
            self.send_header('Content-Encoding', owner.encoding)
        if validators:
            self.send_header('ETag', validators[0])
            self.send_header('Last-Modified', validators[1])
        self.end_headers()
        try:
            if owner.cut_after is None:
                self._sendfile(f, start, end - start)
            else:
                f.seek(start)
                self._copy(f, end - start)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _sent(self, n):
        owner = self.server.owner
        with owner._lock:
            owner.sent += n
            owner.bodies[self.index] += n

    def _sendfile(self, f, offset, length):
        owner = self.server.owner
        while length > 0:
            rate = owner.rate
            n = self.connection.sendfile(
                f, offset, min(length, _piece(rate) if rate else 256 * PIECE))
            if not n:
                return
            self._sent(n)
            offset += n
            length -= n
            if rate:  # piece by piece, so that a new rate applies at once
                time.sleep(n / rate)

    def _copy(self, f, length):
        """Send ``length`` bytes of ``f``, or close the connection after
        ``cut_after`` of them."""
        owner = self.server.owner
        done = 0
        cut = length if owner.cut_after is None else owner.cut_after
        while done < length:
            piece = f.read(min(_piece(owner.rate), length - done))[:cut - done]
            if not piece:
                self.close_connection = True
                return
            if owner.rate:
                # piece by piece, so that a new rate applies at once
                time.sleep(len(piece) / owner.rate)
            self.wfile.write(piece)
            done += len(piece)
            self._sent(len(piece))
