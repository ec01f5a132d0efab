"""A small Glance v2 image API on 127.0.0.1, enough for glanceclient.

Nova reads an image through python-glanceclient, which asks for three
things: ``GET /v2/schemas/image`` (the model it builds the image from),
``GET /v2/images/{id}`` (the metadata: nova reads disk_format from it, the
client the hashes) and ``GET /v2/images/{id}/file`` (the data). This server
answers them for image files it is given, as glance-api does: the metadata
of an active image with its md5 ``checksum`` and ``os_hash_algo``/
``os_hash_value`` (sha512), and the data with ``Content-Length`` and
``Content-MD5`` (where glance-api sends the checksum), sent
with ``sendfile`` so the server is not what a download waits for. Anything
else is 404. It counts the data requests per image.
"""

import hashlib
import http.server
import json
import os
import re
import threading
import uuid

_IMAGE = re.compile(r'/v2/images/([^/?]+)(/file)?$')
_CHUNK = 8 * 1024 * 1024

#: The image schema: the base properties Nova and glanceclient read; any
#: other key is a custom property (a string), as in Glance's own schema.
SCHEMA = {
    'name': 'image',
    'properties': {name: {'type': kind} for name, kind in (
        ('id', 'string'), ('name', ['null', 'string']),
        ('status', 'string'), ('visibility', 'string'),
        ('protected', 'boolean'), ('os_hidden', 'boolean'),
        ('checksum', ['null', 'string']), ('owner', ['null', 'string']),
        ('os_hash_algo', ['null', 'string']),
        ('os_hash_value', ['null', 'string']),
        ('size', ['null', 'integer']), ('virtual_size', ['null', 'integer']),
        ('disk_format', ['null', 'string']),
        ('container_format', ['null', 'string']),
        ('min_ram', 'integer'), ('min_disk', 'integer'),
        ('created_at', 'string'), ('updated_at', 'string'),
        ('tags', 'array'), ('self', 'string'), ('file', 'string'),
        ('schema', 'string'), ('direct_url', 'string'),
        ('locations', 'array'))},
    'additionalProperties': {'type': 'string'},
}


def image_id(path):
    """A stable image id for a file: the same id for the same name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, os.path.basename(path)))


def describe(path, disk_format, virtual_size):
    """Glance's record of an active image holding the file ``path``."""
    md5, sha512 = hashlib.md5(), hashlib.sha512()
    with open(path, 'rb') as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha512.update(chunk)
    ident = image_id(path)
    return {
        'id': ident, 'name': os.path.basename(path), 'status': 'active',
        'visibility': 'public', 'protected': False, 'os_hidden': False,
        'checksum': md5.hexdigest(), 'os_hash_algo': 'sha512',
        'os_hash_value': sha512.hexdigest(), 'owner': 'bench',
        'size': os.path.getsize(path), 'virtual_size': virtual_size,
        'disk_format': disk_format, 'container_format': 'bare',
        'min_ram': 0, 'min_disk': 0, 'tags': [],
        'created_at': '2026-01-01T00:00:00Z',
        'updated_at': '2026-01-01T00:00:00Z',
        'self': f'/v2/images/{ident}', 'file': f'/v2/images/{ident}/file',
        'schema': '/v2/schemas/image'}


class FakeGlance:
    """Use as a context manager; :meth:`add` an image, then point clients
    at :attr:`url`."""

    def __init__(self):
        self.images = {}            # id -> (path, record)
        self.downloads = {}         # id -> data requests seen
        self._lock = threading.Lock()
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={'poll_interval': 0.01},
                                        daemon=True)

    @property
    def url(self):
        return f'http://127.0.0.1:{self._httpd.server_address[1]}'

    def add(self, path, disk_format, virtual_size):
        """Serve the file ``path`` as an active image; its record."""
        record = describe(path, disk_format, virtual_size)
        self.images[record['id']] = (path, record)
        self.downloads[record['id']] = 0
        return record

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

    def _json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        owner = self.server.owner
        if self.path == '/v2/schemas/image':
            return self._json(SCHEMA)
        found = _IMAGE.match(self.path)
        image = found and owner.images.get(found.group(1))
        if not image:
            self.send_response(404)
            self.send_header('Content-Length', '0')
            return self.end_headers()
        path, record = image
        if not found.group(2):
            return self._json(record)
        with owner._lock:
            owner.downloads[record['id']] += 1
        with open(path, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header('Content-Type', 'application/octet-stream')
            self.send_header('Content-Length', str(size))
            self.send_header('Content-MD5', record['checksum'])
            self.end_headers()
            offset = 0
            try:
                while offset < size:
                    sent = self.connection.sendfile(f, offset,
                                                    size - offset)
                    if not sent:
                        break
                    offset += sent
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
