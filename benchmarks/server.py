"""A loopback HTTP server for the inputs: Range, sendfile, counters, throttle.

The same idea as tests/httpserver.py, cut to what the benchmarks need: it
counts the GET requests and body bytes per path (how many downloads a case
made and how much they fetched), serves with ``socket.sendfile`` (the
server must not be the bottleneck of a cold boot) and can throttle to a
rate (bytes a second) so that a run can be killed mid-download.
"""

import http.server
import os
import re
import threading
import time

_RANGE = re.compile(r'bytes=(\d+)-(\d*)$')
PIECE = 256 * 1024


class Server:
    """Serve ``root`` on 127.0.0.1; use as a context manager."""

    def __init__(self, root):
        self.root = root
        self.rate = None
        self._lock = threading.Lock()
        self._log = []
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.05},
                                        daemon=True)

    def url(self, name):
        return f'http://127.0.0.1:{self._httpd.server_address[1]}/{name}'

    def reset(self):
        """Forget the requests seen so far."""
        with self._lock:
            self._log = []

    def gets(self):
        """[{'path', 'range', 'sent'}] of every GET since the last reset."""
        with self._lock:
            return [dict(r) for r in self._log]

    def _record(self, path, wanted):
        with self._lock:
            entry = {'path': path, 'range': wanted, 'sent': 0}
            self._log.append(entry)
            return entry

    def _sent(self, entry, n):
        with self._lock:
            entry['sent'] += n

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        entry = owner._record(self.path, self.headers.get('Range'))
        path = os.path.join(owner.root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        start, end = 0, size
        wanted = _RANGE.match(self.headers.get('Range') or '')
        if wanted:
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
        self.wfile.flush()
        with open(path, 'rb') as f:
            try:
                self._body(f, start, end - start, entry)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _body(self, f, offset, length, entry):
        owner = self.server.owner
        while length > 0:
            rate = owner.rate
            piece = min(length, PIECE if rate else 64 * PIECE)
            n = self.connection.sendfile(f, offset, piece)
            if not n:
                return
            owner._sent(entry, n)
            offset += n
            length -= n
            if rate:
                time.sleep(n / rate)
