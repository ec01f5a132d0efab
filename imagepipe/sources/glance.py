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
    Base URLs (``http://host:9292``), tried in turn while they cannot be
    reached (or answer 5xx); any other HTTP error is final. Without them,
    the ``image`` endpoint comes from the Keystone catalog (``auth`` needed).
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
puts credentials in it (a token or password there would land in the run
database). With neither ``token`` nor ``auth`` in the dict they come from
the environment, as the ``openstack`` client reads them (:data:`ENV_AUTH`):
``OS_TOKEN`` for a fixed token, or ``OS_AUTH_URL`` and the rest for
Keystone auth; a resumed run reads them again. With none of these, no
credentials are sent (a no-auth Glance).
"""

from http import client as http_client
import json
import os
import re

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from oslo_utils import uuidutils
import requests
import urllib3

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import http as http_source
from imagepipe.sources import resume

#: What reading a response body raises when the connection breaks.
_READ_ERRORS = (OSError, http_client.HTTPException,
                urllib3.exceptions.HTTPError,
                requests.exceptions.RequestException)

#: What a request raises when the server cannot be reached.
_UNREACHABLE = (ks_exc.ConnectionError, ks_exc.RetriableConnectionFailure)

_ERRNO = re.compile(r'\[Errno -?\d+\] [^\'")\]]+')
_ERRNO_REPR = re.compile(r"\w+Error\((-?\d+), '([^']*)'\)")
_WORDS_REPR = re.compile(r"\w+\('([^']+)'\)")
_VERSION_SUFFIX = re.compile(r'/v\d+(\.\d+)?/?$')


#: keystoneauth1 parameter of each environment variable the openstack
#: client reads; OS_TOKEN is a fixed token.
ENV_AUTH = {
    'OS_AUTH_TYPE': 'auth_type',
    'OS_AUTH_URL': 'auth_url',
    'OS_USERNAME': 'username',
    'OS_USER_ID': 'user_id',
    'OS_PASSWORD': 'password',
    'OS_PROJECT_NAME': 'project_name',
    'OS_PROJECT_ID': 'project_id',
    'OS_USER_DOMAIN_NAME': 'user_domain_name',
    'OS_USER_DOMAIN_ID': 'user_domain_id',
    'OS_PROJECT_DOMAIN_NAME': 'project_domain_name',
    'OS_PROJECT_DOMAIN_ID': 'project_domain_id',
    'OS_APPLICATION_CREDENTIAL_ID': 'application_credential_id',
    'OS_APPLICATION_CREDENTIAL_SECRET': 'application_credential_secret',
}
#: the same for the session and the catalog lookup
ENV_OTHER = {'OS_REGION_NAME': 'region_name', 'OS_INTERFACE': 'interface',
             'OS_CACERT': 'cafile'}


def with_env_credentials(glance, environ):
    """``glance`` with the environment's credentials when it has none."""
    if glance.get('token') or glance.get('auth'):
        return glance
    found = {key: environ[var] for var, key in ENV_OTHER.items()
             if environ.get(var)}
    if environ.get('OS_TOKEN'):
        found['token'] = environ['OS_TOKEN']
    elif environ.get('OS_AUTH_URL'):
        found['auth'] = {key: environ[var] for var, key in ENV_AUTH.items()
                         if environ.get(var)}
    return {**found, **glance}


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
        glance = with_env_credentials(glance, os.environ)
        self.retries = resume.retries_of(glance)
        self.session = _session(ref, glance)
        if glance.get('auth'):
            _authenticate(ref, self.session)
        self.servers = _servers(ref, glance, self.session)
        self._describe(self._metadata())

    # -- metadata ---------------------------------------------------------

    def _metadata(self):
        try:
            response = self._first_answer(f'/v2/images/{self.image_id}', 0)
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
            self.ref, self._open_at, offset, self.retries, _READ_ERRORS,
            reason=_reason, size=self.size, opened=True,
            identity=self.identity).stream()

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
        response = self._first_answer(path, offset)
        if response.status_code == 204:
            response.close()
            raise exception.SourceError(f'{self.ref}: no image data '
                                        '(HTTP 204)')
        return response

    # -- requests ---------------------------------------------------------

    def _first_answer(self, path, offset):
        """The first server's answer that is not a connection failure.

        Raises :class:`base.Unreachable` (a SourceError) when every server
        failed to connect or answered 5xx, SourceError on other errors.
        """
        failures = []
        for server in self.servers:
            url = server + path
            try:
                response = self._get(url, offset)
            except base.Unreachable as e:
                failures.append(str(e))
                continue
            if response.status_code >= 500:
                failures.append(f'{url}: {_explain(response)}')
                continue
            if response.status_code == 416 and offset:
                # Past the end: the part is longer than the image; start over.
                response.close()
                return self._first_answer(path, 0)
            if response.status_code >= 400:
                what = http_source.STATUS_WORDS.get(response.status_code,
                                                    'refused')
                raise exception.SourceError(
                    f'{self.ref}: {url}: {what} ({_explain(response)})')
            return response
        raise base.Unreachable(
            f'no Glance API server reachable ({"; ".join(failures)})')

    def _get(self, url, offset):
        headers = {'Accept-Encoding': 'identity'}
        if offset:
            headers['Range'] = f'bytes={offset}-'
        try:
            return self.session.get(url, headers=headers, stream=True,
                                    raise_exc=False, connect_retries=0)
        except _UNREACHABLE as e:
            raise base.Unreachable(
                f'{url}: unreachable: {_reason(e)}') from None
        except ks_exc.ClientException as e:
            # Getting a token failed (Keystone refused or was unreachable).
            raise exception.SourceError(
                f'{self.ref}: authentication failed: {_reason(e)}') from None


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


def _session(ref, glance):
    """A keystoneauth1 Session with the credentials the dict gives."""
    token, auth = glance.get('token'), glance.get('auth')
    if token and auth:
        raise exception.SourceError(
            f'{ref}: give Glance either a token or auth parameters, not both')
    plugin = None
    if token:
        plugin = token_endpoint.Token(None, token)
    elif auth:
        params = dict(auth)
        auth_type = params.pop('auth_type', None) or 'password'
        try:
            plugin = ks_loading.get_plugin_loader(
                auth_type).load_from_options(**params)
        except ks_exc.ClientException as e:
            raise exception.SourceError(
                f'{ref}: Glance auth ({auth_type}): {_reason(e)}') from None
    verify = True
    if glance.get('insecure'):
        verify = False
    elif glance.get('cafile'):
        verify = glance['cafile']
    return ks_session.Session(auth=plugin, verify=verify,
                              timeout=http_source.TIMEOUT,
                              user_agent='imagepipe')


def _authenticate(ref, session):
    """Get a token now, so a Keystone failure is named as such."""
    try:
        session.get_auth_headers()
    except ks_exc.ClientException as e:
        raise exception.SourceError(
            f'{ref}: Keystone authentication failed: {_reason(e)}') from None


def _servers(ref, glance, session):
    """Base URLs: the configured ones, else the catalog's image endpoint."""
    servers = [s.rstrip('/') for s in glance.get('api_servers') or ()]
    if servers:
        return servers
    if not glance.get('auth'):
        raise exception.SourceError(
            f'{ref}: no Glance api_servers given and no auth to find the '
            'image endpoint in the Keystone catalog')
    try:
        url = session.get_endpoint(
            service_type='image', interface=glance.get('interface') or
            'public', region_name=glance.get('region_name'))
    except ks_exc.ClientException as e:
        raise exception.SourceError(
            f'{ref}: finding the image endpoint in the Keystone catalog '
            f'failed: {_reason(e)}') from None
    if not url:
        raise exception.SourceError(
            f'{ref}: the Keystone catalog has no image endpoint')
    return [_VERSION_SUFFIX.sub('', url.rstrip('/'))]


def _reason(error):
    """A short reason for a connection, read or auth error, on one line."""
    text = str(error)
    found = _ERRNO.search(text)
    if found:
        return found.group(0).strip()
    found = _ERRNO_REPR.search(text)      # ConnectionResetError(104, '...')
    if found:
        return f'[Errno {found.group(1)}] {found.group(2)}'
    if 'timed out' in text.lower():
        return 'timed out'
    if isinstance(error, urllib3.exceptions.ProtocolError) and error.args:
        text = str(error.args[0])     # not the tuple of (text, cause)
    elif isinstance(error, ks_exc.ConnectionError):
        found = _WORDS_REPR.search(text)   # RemoteDisconnected('...')
        if found:
            return found.group(1)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _explain(response):
    """``HTTP nnn`` and the gist of what the server said; closes it."""
    try:
        text = response.raw.read(2048, decode_content=True) or b''
    except _READ_ERRORS:
        text = b''
    response.close()
    text = re.sub(r'<[^>]*>', ' ', text.decode('utf-8', 'replace'))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A short last line is Glance's own reason ("No image found with ID
    # ..."); a long one is webob's boilerplate for the status.
    said = f': {lines[-1]}' if lines and len(lines[-1]) <= 150 else ''
    return f'HTTP {response.status_code}{said}'


