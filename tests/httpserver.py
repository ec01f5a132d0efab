"""A real threaded HTTP server on 127.0.0.1 for the tests and benchmarks.

It serves files from a directory with Range support, and a minimal Glance v2
image API (``/v2/images/{id}`` and ``/v2/images/{id}/file``) for the images
registered with :meth:`Server.add_image`. It records every request and the
body bytes it sent; it can ignore Range, cut a response after a number of
body bytes, throttle the bytes it sends (``rate``, bytes a second), listen on
a given port (to come back where it was after a stop) and demand a token.
Unless it is to cut responses, it sends files with ``sendfile``, so that it
is not the bottleneck of what it serves.
"""

import http.server
import json
import os
import re
import threading
import time

_RANGE = re.compile(r'bytes=(\d+)-(\d*)$')
_IMAGE = re.compile(r'/v2/images/([^/]+)(/file)?$')
PIECE = 64 * 1024


class Server:
    """Use as a context manager; ``url(name)`` is the URL of a served file."""

    def __init__(self, root, cut_after=None, ignore_range=False, token=None,
                 rate=None, port=0):
        self.root = str(root)
        self.cut_after = cut_after        # body bytes sent before a cut
        self.ignore_range = ignore_range
        self.token = token
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
                                   'range': self.headers.get('Range')})
            owner.bodies.append(0)
        if owner.token and self.headers.get('X-Auth-Token') != owner.token:
            return self.send_error(401)
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

    def _send_file(self, name):
        path = os.path.join(self.server.owner.root, name)
        if not os.path.isfile(path):
            return self.send_error(404)
        size = os.path.getsize(path)
        start, end = 0, size
        wanted = _RANGE.match(self.headers.get('Range') or '')
        if wanted and not self.server.owner.ignore_range:
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
        self.end_headers()
        with open(path, 'rb') as f:
            try:
                if self.server.owner.cut_after is None:
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
                f, offset, min(length, PIECE if rate else 256 * PIECE))
            if not n:
                return
            self._sent(n)
            offset += n
            length -= n
            if rate:  # piece by piece, so that a new rate applies at once
                time.sleep(n / rate)

    def _copy(self, f, length):
        """Send at most ``cut_after`` bytes, then close the connection."""
        owner = self.server.owner
        done = 0
        while done < length:
            piece = f.read(min(PIECE, length - done))[:owner.cut_after - done]
            if not piece:
                self.close_connection = True
                return
            if owner.rate:
                # piece by piece, so that a new rate applies at once
                time.sleep(len(piece) / owner.rate)
            self.wfile.write(piece)
            done += len(piece)
            self._sent(len(piece))
