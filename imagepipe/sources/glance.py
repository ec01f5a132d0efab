"""An image in Glance, read through the v2 API with a keystoneauth1 Session.

Two calls: ``GET /v2/images/{id}`` for the metadata (the image must be
``active``; it gives disk_format, container_format, size, virtual_size and the
hashes) and ``GET /v2/images/{id}/file`` for the data, which Glance serves
with Range support.

Why keystoneauth1 and not python-glanceclient or the stdlib: glanceclient's
``images.data()`` hashes the stream itself (md5 or os_hash, a second hash
beside Fetch's, which is the download's bottleneck) and cannot ask for a byte
range, so it can neither continue a ``.part`` nor a cut download. A
keystoneauth1 :class:`~keystoneauth1.session.Session` gives what the stdlib
would have to reimplement: the auth plugins (a fixed token, password auth
against Keystone with the image endpoint from the catalog, a new token on a
401), TLS verification options and the request logging with the token
redacted; and with ``stream=True`` it hands back a requests response whose
raw body we read ourselves, with our own ``Range`` header, nothing decoded
and nothing hashed on the way. Fetch does the sparse write and the one hash.

A download that breaks off is continued inside the stream, as an HTTP one
is (:mod:`imagepipe.sources.resume`).

The ``glance`` dict (the Fetch task's ``glance`` input) may hold:

``api_servers``
    Base URLs (``http://host:9292``). Without them, the ``image`` endpoint
    comes from the Keystone catalog (``auth`` needed).
``num_retries``
    Attempts after the first to reach a server, each on the next server
    (:mod:`imagepipe.sources.glance_api`); default 0.
``token``
    A fixed token sent as ``X-Auth-Token``, with no Keystone involved.
``auth``
    keystoneauth1 plugin parameters, e.g. ``{"auth_type": "password",
    "auth_url": ..., "username": ..., "password": ..., "project_name": ...,
    "user_domain_name": ..., "project_domain_name": ...}`` (``auth_type``
    defaults to ``password``).
``region_name``, ``interface``
    Which catalog endpoint to use when there are no ``api_servers``.
``insecure``, ``cafile``
    TLS: skip certificate verification, or verify against this CA bundle.
``download_retries``
    How many times an interrupted download is continued with a Range request
    (the delay doubles from ``resume.RETRY_DELAY``) before it fails;
    default 3.

The dict is among the run's stored arguments, so the command line never
puts credentials in it: they come from the environment
(:mod:`imagepipe.sources.glance_auth`). What fails is worded by
:mod:`imagepipe.sources.glance_errors`.
"""

import json
import os

from oslo_utils import uuidutils

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import glance_api
from imagepipe.sources import glance_auth
from imagepipe.sources import glance_errors
from imagepipe.sources import http as http_source
from imagepipe.sources import resume


class GlanceImage(base.ImageSource):
    """Glance image ``image_id``; the metadata is read at once."""

    supports_range = True
    container_format = None
    virtual_size = None
    identity = None

    def __init__(self, ref, image_id, glance):
        super().__init__(ref)
        if not uuidutils.is_uuid_like(image_id):
            raise exception.SourceError(
                f'{ref}: {image_id!r} is not a Glance image id')
        self.image_id = image_id
        glance = glance_auth.with_env_credentials(glance, os.environ)
        self.retries = resume.retries_of(glance)
        self.api = glance_api.Api(ref, glance)
        self._describe(self._metadata())

    # -- metadata ---------------------------------------------------------

    def _metadata(self):
        try:
            response = self.api.first_answer(f'/v2/images/{self.image_id}', 0)
        except base.Unreachable as e:
            raise exception.SourceError(f'{self.ref}: {e}') from None
        with response:
            try:
                return json.loads(response.content)
            except ValueError:
                raise exception.SourceError(
                    f'{self.ref}: Glance answered with invalid JSON'
                ) from None

    def _describe(self, meta):
        """Refuse an image that is not active; keep what Fetch verifies."""
        status = meta.get('status')
        if status != 'active':
            why = {'deactivated': ' (an administrator deactivated it)',
                   'killed': ' (its upload failed)',
                   'queued': ' (it has no data yet)'}.get(status, '')
            raise exception.SourceError(
                f'{self.ref}: image is {status}, not active{why}')
        self.size = meta.get('size')
        self.virtual_size = meta.get('virtual_size')
        self.disk_format = meta.get('disk_format')
        self.container_format = meta.get('container_format')
        if meta.get('os_hash_algo') and meta.get('os_hash_value'):
            self.checksum = (meta['os_hash_algo'], meta['os_hash_value'])
        elif meta.get('checksum'):
            self.checksum = ('md5', meta['checksum'])
        if self.checksum:
            # Glance never changes the data of an image; the checksum and
            # size still prove a partial download is of these bytes.
            self.identity = {'checksum': ':'.join(self.checksum),
                             'size': self.size}

    # -- data -------------------------------------------------------------

    def read(self, offset=0, identity=None):
        if identity is None or identity != self.identity:
            offset = 0
        if offset and self.size and offset >= self.size:
            # The part holds the whole image (a crash after the last byte):
            # nothing to ask for, Fetch verifies what it has.
            return base.Stream(self.ref, _Empty(), self.size, self.size, 0,
                               identity=self.identity)
        return resume.ResumingBody(
            self.ref, self._open_at, offset, self.retries,
            glance_errors.READ_ERRORS, reason=glance_errors.reason,
            size=self.size, opened=True, identity=self.identity).stream()

    def _open_at(self, offset, identity):
        response = self.open_file(offset)
        try:
            start, total = http_source.content_range(
                self.ref, response.status_code, response.headers, offset,
                self.size)
        except exception.SourceError:
            response.close()
            raise
        return _Raw(response), start, total, self.identity

    def open_file(self, offset):
        """The response to ``GET .../file`` from ``offset`` on."""
        path = f'/v2/images/{self.image_id}/file'
        response = self.api.first_answer(path, offset)
        if response.status_code == 204:
            response.close()
            raise exception.SourceError(f'{self.ref}: no image data '
                                        '(HTTP 204)')
        return response


class _Raw:
    """A requests response's body as it came: nothing decoded."""

    def __init__(self, response):
        self.response = response

    def read1(self, size):
        return self.response.raw.read1(size, decode_content=False)

    def close(self):
        self.response.close()


class _Empty:
    def read1(self, size):
        return b''

    def close(self):
        pass
