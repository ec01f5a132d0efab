import hashlib
import http.server
import json
import socket
import threading

import pytest

from imagepipe import exception
from imagepipe import sources
from imagepipe.sources import base
from imagepipe.sources import credentials
from imagepipe.sources import glance_auth
from imagepipe.sources import resume
from tests import httpserver

IMAGE_ID = '6b1b4c5e-0a3e-4d59-9a51-3f1ad0d6d2a1'
DATA = bytes(range(256)) * (12 * 1024 + 7)   # 3 MiB and a bit
#: Glance metadata of DATA with the checksum that names its version.
HASHED = {'size': len(DATA), 'os_hash_algo': 'sha512',
          'os_hash_value': hashlib.sha512(DATA).hexdigest()}


@pytest.fixture
def served(tmp_path):
    (tmp_path / 'img.bin').write_bytes(DATA)
    return tmp_path


@pytest.fixture
def server(served):
    with httpserver.Server(served) as srv:
        srv.add_image(IMAGE_ID, 'img.bin', size=len(DATA), disk_format='raw',
                      checksum=hashlib.md5(DATA).hexdigest(),
                      os_hash_algo='sha512',
                      os_hash_value=hashlib.sha512(DATA).hexdigest())
        yield srv


def closed_port_url():
    """A URL on 127.0.0.1 nobody listens on."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}'


def read_all(source, offset=0, identity=None):
    with source.read(offset, identity) as stream:
        chunks = list(stream)
    return stream, chunks


def version(source):
    """The identity a whole read of ``source`` names."""
    return read_all(source)[0].identity


def test_chunks_are_full_size_except_the_last(served):
    source = sources.open_image(str(served / 'img.bin'))
    stream, chunks = read_all(source)
    assert b''.join(chunks) == DATA
    assert {len(c) for c in chunks[:-1]} == {base.CHUNK_SIZE}
    assert 0 < len(chunks[-1]) <= base.CHUNK_SIZE
    assert base.CHUNK_SIZE >= 1024 * 1024


def test_local_path(served):
    source = sources.open_image(str(served / 'img.bin'))
    assert (source.size, source.checksum, source.disk_format) == (
        len(DATA), None, None)
    assert source.supports_range
    stream, chunks = read_all(source, 1000, version(source))
    assert stream.offset == 1000
    assert b''.join(chunks) == DATA[1000:]


def test_file_url(served):
    source = sources.open_image((served / 'img.bin').as_uri())
    assert b''.join(read_all(source)[1]) == DATA


def test_missing_file(tmp_path):
    with pytest.raises(exception.SourceError, match='No such file'):
        sources.open_image(str(tmp_path / 'nope'))


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(exception.SourceError, match='not a regular file'):
        sources.open_image(str(tmp_path))


def test_unsupported_scheme():
    with pytest.raises(exception.SourceError, match='unsupported'):
        sources.open_image('ftp://example.com/x.img')


def test_http_opening_makes_no_request(server):
    source = sources.open_image(server.url('img.bin'))
    assert source.size is None and source.supports_range
    assert server.requests == []


def test_http_whole_and_range(server):
    source = sources.open_image(server.url('img.bin'))
    stream, chunks = read_all(source)
    assert (stream.offset, stream.total) == (0, len(DATA))
    assert b''.join(chunks) == DATA
    stream, chunks = read_all(source, 5000, stream.identity)
    assert (stream.offset, stream.total) == (5000, len(DATA))
    assert b''.join(chunks) == DATA[5000:]
    assert server.ranges() == [None, 'bytes=5000-']


def test_http_range_ignored_starts_over(served):
    with httpserver.Server(served, ignore_range=True) as srv:
        source = sources.open_image(srv.url('img.bin'))
        stream, chunks = read_all(source, 5000, version(source))
        assert srv.ranges() == [None, 'bytes=5000-']
    assert stream.offset == 0
    assert b''.join(chunks) == DATA


def test_http_range_past_the_end_starts_over(server):
    source = sources.open_image(server.url('img.bin'))
    stream, chunks = read_all(source, len(DATA), version(source))
    assert stream.offset == 0 and b''.join(chunks) == DATA
    assert server.ranges() == [None, f'bytes={len(DATA)}-', None]


def test_http_not_found(server):
    source = sources.open_image(server.url('missing.bin'))
    with pytest.raises(exception.SourceError,
                       match=r'missing.bin: not found \(HTTP 404\)'):
        source.read()


def test_http_unreachable_is_one_line():
    source = sources.open_image(closed_port_url() + '/img.bin')
    with pytest.raises(exception.SourceError, match='unreachable') as err:
        source.read()
    assert '\n' not in str(err.value)


def test_http_cut_download_continues_with_range(served, no_retry_delay):
    piece = base.CHUNK_SIZE
    with httpserver.Server(served, cut_after=piece) as srv:
        source = sources.open_image(srv.url('img.bin'),
                                    {'download_retries': 3})
        stream, chunks = read_all(source)
        assert b''.join(chunks) == DATA
        assert (stream.offset, stream.total) == (0, len(DATA))
        assert srv.ranges() == [None] + [
            f'bytes={n * piece}-' for n in (1, 2, 3)]


def test_http_cut_download_gives_up(served, no_retry_delay):
    with httpserver.Server(served, cut_after=100000) as srv:
        source = sources.open_image(srv.url('img.bin'),
                                    {'download_retries': 1})
        with pytest.raises(resume.DownloadCut) as err:
            read_all(source)
    assert str(err.value) == (
        f'{srv.url("img.bin")}: download cut at byte 200000 of {len(DATA)} '
        '(the connection was closed); gave up after 1 Range retries')


def test_glance_metadata(server):
    glance = {'api_servers': [server.base_url]}
    for ref in (IMAGE_ID, f'glance://{IMAGE_ID}'):
        source = sources.open_image(ref, glance)
        assert source.ref == ref
        assert source.size == len(DATA)
        assert source.disk_format == 'raw'
        assert source.checksum == ('sha512', hashlib.sha512(DATA).hexdigest())
        assert source.supports_range
    assert server.requests[0]['path'] == f'/v2/images/{IMAGE_ID}'


def test_glance_md5_when_no_os_hash(server):
    server.add_image(IMAGE_ID, 'img.bin', size=len(DATA),
                     checksum=hashlib.md5(DATA).hexdigest())
    source = sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    assert source.checksum == ('md5', hashlib.md5(DATA).hexdigest())


def test_glance_download_with_range(server):
    source = sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    stream, chunks = read_all(source, 10, source.identity)
    assert stream.offset == 10 and b''.join(chunks) == DATA[10:]
    assert {k: server.requests[-1][k] for k in ('method', 'range', 'path')
            } == {'method': 'GET', 'range': 'bytes=10-',
                  'path': f'/v2/images/{IMAGE_ID}/file'}


def test_glance_tries_the_next_server_on_a_retry(server):
    down = closed_port_url()
    glance = {'api_servers': [down, server.base_url + '/']}
    with pytest.raises(exception.SourceError,
                       match=rf'no Glance API server reachable \({down}/'):
        sources.open_image(IMAGE_ID, glance)        # num_retries 0: one try
    assert server.gets() == []
    source = sources.open_image(IMAGE_ID, {**glance, 'num_retries': 1})
    assert b''.join(read_all(source)[1]) == DATA


def test_glance_no_server_reachable():
    glance = {'api_servers': [closed_port_url(), closed_port_url()]}
    with pytest.raises(exception.SourceError,
                       match='no Glance API server reachable') as err:
        sources.open_image(IMAGE_ID, glance)
    assert '\n' not in str(err.value)


def test_glance_token(served):
    with httpserver.Server(served, token='secret') as srv:
        srv.add_image(IMAGE_ID, 'img.bin', size=len(DATA))
        with pytest.raises(exception.SourceError,
                           match=r'authentication required \(HTTP 401'):
            sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url]})
        source = sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url],
                                               'token': 'secret'})
        assert b''.join(read_all(source)[1]) == DATA


def test_glance_not_found(server):
    with pytest.raises(exception.SourceError, match=r'not found \(HTTP 404'):
        sources.open_image('0b4a4d3c-58b1-4a37-8f2c-6c4b8e1f0d11',
                           {'api_servers': [server.base_url]})


def test_glance_not_active(server):
    server.add_image(IMAGE_ID, 'img.bin', status='queued')
    with pytest.raises(exception.SourceError,
                       match='image is queued, not active'):
        sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})


def test_glance_ref_needs_glance():
    with pytest.raises(exception.SourceError, match='needs Glance'):
        sources.open_image(f'glance://{IMAGE_ID}')


def test_glance_metadata_extras(server):
    server.add_image(IMAGE_ID, 'img.bin', size=len(DATA), disk_format='raw',
                     container_format='bare', virtual_size=len(DATA))
    source = sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    assert (source.container_format, source.virtual_size) == (
        'bare', len(DATA))
    assert source.checksum is None


def test_glance_ref_must_be_an_image_id(server):
    with pytest.raises(exception.SourceError,
                       match="'nope' is not a Glance image id"):
        sources.open_image('glance://nope', {'api_servers': [server.base_url]})
    assert server.requests == []


def test_glance_deactivated(server):
    server.add_image(IMAGE_ID, 'img.bin', status='deactivated')
    with pytest.raises(exception.SourceError,
                       match='image is deactivated, not active') as err:
        sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    assert '\n' not in str(err.value)
    assert [r['path'] for r in server.requests] == [f'/v2/images/{IMAGE_ID}']


def test_glance_cut_download_continues_with_range(served, no_retry_delay):
    piece = base.CHUNK_SIZE
    with httpserver.Server(served, cut_after=piece) as srv:
        srv.add_image(IMAGE_ID, 'img.bin', **HASHED)
        source = sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url],
                                               'download_retries': 3})
        stream, chunks = read_all(source)
        assert b''.join(chunks) == DATA
        assert (stream.offset, stream.total) == (0, len(DATA))
        assert srv.ranges()[1:] == [None] + [
            f'bytes={n * piece}-' for n in (1, 2, 3)]


def test_glance_cut_download_gives_up(served, no_retry_delay):
    piece = base.CHUNK_SIZE
    with httpserver.Server(served, cut_after=piece) as srv:
        srv.add_image(IMAGE_ID, 'img.bin', **HASHED)
        source = sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url],
                                               'download_retries': 2})
        with pytest.raises(resume.DownloadCut) as err:
            read_all(source)
    assert err.value.position == 3 * piece
    message = str(err.value)
    assert message.startswith(
        f'{IMAGE_ID}: download cut at byte {3 * piece} of {len(DATA)} (')
    assert message.endswith('gave up after 2 Range retries')
    assert '\n' not in message


def test_glance_cut_retries_default_to_three(served, no_retry_delay):
    with httpserver.Server(served, cut_after=1000) as srv:
        srv.add_image(IMAGE_ID, 'img.bin', **HASHED)
        source = sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url]})
        with pytest.raises(exception.SourceError,
                           match='download cut at byte 4000 .*after 3 Range'):
            read_all(source)


def test_glance_server_gone_mid_download(served, no_retry_delay):
    """The server stops for good: the continuations cannot connect."""
    with httpserver.Server(served, cut_after=100000) as srv:
        srv.add_image(IMAGE_ID, 'img.bin', **HASHED)
        source = sources.open_image(IMAGE_ID, {'api_servers': [srv.base_url],
                                               'download_retries': 2})
        stream = source.read()
    with pytest.raises(exception.SourceError,
                       match=r'download cut at byte 100000 of \d+ \(.*\); '
                             'gave up after 2 Range retries; last: no Glance '
                             r'API server reachable \(.*Connection refused\)$'
                       ) as err:
        with stream:
            list(stream)
    assert '\n' not in str(err.value)


def test_glance_whole_part_needs_no_request(server):
    source = sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    count = len(server.requests)
    stream, chunks = read_all(source, len(DATA), source.identity)
    assert (stream.offset, chunks) == (len(DATA), [])
    assert len(server.requests) == count


def test_glance_token_and_auth_exclusive(server):
    with pytest.raises(exception.SourceError, match='not both'):
        sources.open_image(IMAGE_ID, {'api_servers': [server.base_url],
                                      'token': 't', 'auth': {'x': 1}})


class FakeKeystone:
    """Keystone v3 password auth: one user, a token and a catalog."""

    def __init__(self, token, image_url, password='pw'):
        self.token, self.image_url, self.password = token, image_url, password
        self.posts = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, code, body, headers=()):
                data = json.dumps(body).encode()
                self.send_response(code)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._json(200, {'version': {
                    'id': 'v3.14', 'status': 'stable',
                    'links': [{'rel': 'self', 'href': owner.url + '/'}],
                    'media-types': []}})

            def do_POST(self):
                body = json.loads(self.rfile.read(
                    int(self.headers['Content-Length'])))
                owner.posts.append((self.path, body))
                user = body['auth']['identity']['password']['user']
                if user['password'] != owner.password:
                    return self._json(401, {'error': {
                        'code': 401, 'title': 'Unauthorized',
                        'message': 'The request you have made requires '
                                   'authentication.'}})
                self._json(201, {'token': {
                    'methods': ['password'],
                    'expires_at': '2099-01-01T00:00:00.000000Z',
                    'issued_at': '2026-01-01T00:00:00.000000Z',
                    'user': {'id': 'u1', 'name': user['name'],
                             'domain': {'id': 'default', 'name': 'Default'}},
                    'project': {'id': 'p1', 'name': 'demo',
                                'domain': {'id': 'default',
                                           'name': 'Default'}},
                    'catalog': [{'type': 'image', 'name': 'glance',
                                 'id': 's1', 'endpoints': [{
                                     'id': 'e1', 'interface': 'public',
                                     'region': 'R1', 'region_id': 'R1',
                                     'url': owner.image_url}]}]}},
                    headers=[('X-Subject-Token', owner.token)])

        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.url = f'http://127.0.0.1:{self._httpd.server_address[1]}/v3'
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()


def password_auth(keystone, password='pw'):
    return {'auth_type': 'password', 'auth_url': keystone.url,
            'username': 'nova', 'password': password,
            'project_name': 'demo', 'user_domain_name': 'Default',
            'project_domain_name': 'Default'}


@pytest.fixture
def token_server(served):
    with httpserver.Server(served, token='ks-token') as srv:
        srv.add_image(IMAGE_ID, 'img.bin', size=len(DATA),
                      os_hash_algo='sha512',
                      os_hash_value=hashlib.sha512(DATA).hexdigest())
        yield srv


def test_glance_password_auth_with_api_servers(token_server):
    with FakeKeystone('ks-token', 'http://unused.invalid') as keystone:
        source = sources.open_image(IMAGE_ID, {
            'api_servers': [token_server.base_url],
            'auth': password_auth(keystone)})
        assert b''.join(read_all(source)[1]) == DATA
    assert [p for p, _ in keystone.posts] == ['/v3/auth/tokens']


def test_glance_password_auth_endpoint_from_catalog(token_server):
    with FakeKeystone('ks-token', token_server.base_url + '/v2/') as ks:
        source = sources.open_image(IMAGE_ID, {'api_servers': [],
                                               'auth': password_auth(ks)})
        assert b''.join(read_all(source)[1]) == DATA
    assert token_server.requests[0]['path'] == f'/v2/images/{IMAGE_ID}'


def test_glance_password_auth_refused(token_server):
    with FakeKeystone('ks-token', token_server.base_url) as keystone:
        with pytest.raises(exception.SourceError,
                           match='Keystone authentication failed') as err:
            sources.open_image(IMAGE_ID, {
                'api_servers': [token_server.base_url],
                'auth': password_auth(keystone, password='wrong')})
    assert '\n' not in str(err.value)
    assert token_server.requests == []


def test_glance_no_servers_and_no_auth():
    with pytest.raises(exception.SourceError, match='no Glance api_servers'):
        sources.open_image(IMAGE_ID, {'api_servers': []})


# -- credentials from the environment ----------------------------------------

def test_env_credentials_as_the_openstack_client_reads_them():
    environ = {'OS_AUTH_URL': 'http://ks/v3', 'OS_USERNAME': 'nova',
               'OS_PASSWORD': 'pw', 'OS_PROJECT_NAME': 'demo',
               'OS_USER_DOMAIN_NAME': 'Default', 'OS_REGION_NAME': 'r1',
               'OS_CACERT': '/etc/ca.pem', 'HOME': '/root'}
    got = glance_auth.with_env_credentials({'api_servers': []}, environ)
    assert got == {'api_servers': [], 'region_name': 'r1',
                   'cafile': '/etc/ca.pem',
                   'auth': {'auth_url': 'http://ks/v3', 'username': 'nova',
                            'password': 'pw', 'project_name': 'demo',
                            'user_domain_name': 'Default'}}
    assert glance_auth.with_env_credentials(
        {}, {'OS_TOKEN': 't', 'OS_AUTH_URL': 'http://ks'}) == {'token': 't'}
    # credentials given in the dict win over the environment
    assert glance_auth.with_env_credentials(
        {'token': 'mine'}, {'OS_TOKEN': 't'}) == {'token': 'mine'}


def test_glance_token_from_the_environment(token_server, monkeypatch):
    glance = {'api_servers': [token_server.base_url]}
    with pytest.raises(exception.SourceError, match='HTTP 401'):
        sources.open_image(IMAGE_ID, glance)
    monkeypatch.setenv('OS_TOKEN', 'ks-token')
    assert b''.join(read_all(sources.open_image(IMAGE_ID, glance))[1]) == DATA


def test_glance_password_auth_from_the_environment(token_server,
                                                   monkeypatch):
    with FakeKeystone('ks-token', 'http://unused.invalid') as keystone:
        for key, value in password_auth(keystone).items():
            monkeypatch.setenv(f'OS_{key.upper()}', value)
        source = sources.open_image(IMAGE_ID, {
            'api_servers': [token_server.base_url]})
        assert b''.join(read_all(source)[1]) == DATA
    assert [p for p, _ in keystone.posts] == ['/v3/auth/tokens']


# -- versions: If-Range and identities ---------------------------------------

def test_http_range_names_the_version_it_continues(server):
    source = sources.open_image(server.url('img.bin'))
    first = version(source)
    assert set(first) == {'etag'} and first['etag'].startswith('"')
    stream, chunks = read_all(source, 5000, first)
    assert stream.offset == 5000 and stream.identity == first
    assert server.header('If-Range') == [None, first['etag']]


def test_http_other_version_is_read_whole(server, served):
    source = sources.open_image(server.url('img.bin'))
    old = version(source)
    (served / 'img.new').write_bytes(DATA[::-1])
    (served / 'img.new').rename(served / 'img.bin')
    stream, chunks = read_all(source, 5000, old)
    assert stream.offset == 0 and b''.join(chunks) == DATA[::-1]
    assert stream.identity != old


def test_http_without_validators_is_never_continued(served):
    with httpserver.Server(served, validators=False) as srv:
        source = sources.open_image(srv.url('img.bin'))
        assert version(source) is None
        stream, chunks = read_all(source, 5000, None)
        assert stream.offset == 0 and b''.join(chunks) == DATA
        # a version recorded elsewhere: the server cannot match it
        stream, chunks = read_all(source, 5000, {'etag': '"x"'})
        assert stream.offset == 0 and b''.join(chunks) == DATA
        assert srv.ranges() == [None, None, 'bytes=5000-']


def test_http_identity_prefers_a_strong_etag():
    from imagepipe.sources import http as http_source
    date = 'Mon, 01 Jan 2024 00:00:00 GMT'
    assert http_source.identity_of({'ETag': '"a"', 'Last-Modified': date}
                                   ) == {'etag': '"a"'}
    assert http_source.identity_of({'ETag': 'W/"a"', 'Last-Modified': date}
                                   ) == {'last_modified': date}
    assert http_source.identity_of({'ETag': 'W/"a"'}) is None


def test_local_file_identity(served):
    source = sources.open_image(str(served / 'img.bin'))
    first = version(source)
    assert set(first) == {'size', 'mtime_ns', 'inode'}
    (served / 'img.new').write_bytes(DATA[::-1])
    (served / 'img.new').rename(served / 'img.bin')
    stream, chunks = read_all(sources.open_image(str(served / 'img.bin')),
                              1000, first)
    assert stream.offset == 0 and b''.join(chunks) == DATA[::-1]


def test_glance_identity_is_its_checksum_and_size(server):
    source = sources.open_image(IMAGE_ID, {'api_servers': [server.base_url]})
    assert source.identity == {
        'checksum': f'sha512:{hashlib.sha512(DATA).hexdigest()}',
        'size': len(DATA)}
    stream, _ = read_all(source, 10, {'checksum': 'md5:0', 'size': 1})
    assert stream.offset == 0


# -- Content-Encoding ---------------------------------------------------------

@pytest.mark.parametrize('kind', ['http', 'glance'])
def test_encoded_body_is_refused(served, kind):
    with httpserver.Server(served, encoding='gzip') as srv:
        srv.add_image(IMAGE_ID, 'img.bin', size=len(DATA))
        ref, glance = srv.url('img.bin'), None
        if kind == 'glance':
            ref, glance = IMAGE_ID, {'api_servers': [srv.base_url]}
        with pytest.raises(exception.SourceError) as err:
            read_all(sources.open_image(ref, glance))
        assert srv.header('Accept-Encoding')[-1] == 'identity'
    assert str(err.value) == (
        f"{ref}: the server sent the image with Content-Encoding 'gzip'; "
        'only the unencoded image is accepted')


# -- credentials --------------------------------------------------------------

@pytest.fixture
def no_netrc(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.delenv('NETRC', raising=False)


def test_credentials_are_kept_out_of_the_shown_url():
    typed = 'https://bob:p%40ss@images.example:8443/d.qcow2?token=t0k&x=1'
    shown = credentials.keep(typed)
    assert shown == 'https://images.example:8443/d.qcow2?token=***'
    assert credentials.shown('http://u:pw@[::1/x') == 'http://[::1/x'
    url, user, password, origin = credentials.for_url(shown)
    assert (url, user, password, origin) == (
        'https://images.example:8443/d.qcow2?token=t0k&x=1', 'bob', 'p@ss',
        'the URL')


def test_basic_credentials_from_the_url(served, no_netrc):
    with httpserver.Server(served, basic=('bob', 'pw')) as srv:
        typed = srv.url('img.bin').replace('//', '//bob:pw@')
        source = sources.open_image(typed)
        assert source.ref == srv.url('img.bin')
        assert b''.join(read_all(source)[1]) == DATA
        # the process that was given them finds them by the shown URL
        assert b''.join(read_all(sources.open_image(source.ref))[1]) == DATA
        wrong = sources.open_image(srv.url('img.bin').replace('//',
                                                              '//bob:no@'))
        with pytest.raises(exception.SourceError) as err:
            wrong.read()
    assert str(err.value) == (
        f"{srv.url('img.bin')}: authentication required (HTTP 401): the "
        'server refused the credentials from the URL')


def test_basic_credentials_from_netrc(served, tmp_path, no_netrc,
                                      monkeypatch):
    with httpserver.Server(served, basic=('bob', 'pw')) as srv:
        url = srv.url('img.bin')
        with pytest.raises(exception.SourceError) as err:
            sources.open_image(url).read()
        assert str(err.value) == (
            f'{url}: authentication required (HTTP 401): credentials are '
            'not stored with a run: put them in ~/.netrc (or $NETRC)')
        netrc = tmp_path / 'netrc'
        netrc.write_text('machine 127.0.0.1 login bob password pw\n')
        monkeypatch.setenv('NETRC', str(netrc))
        assert b''.join(read_all(sources.open_image(url))[1]) == DATA
        # ~/.netrc, refused while others may read it
        monkeypatch.delenv('NETRC')
        home_netrc = tmp_path / '.netrc'
        netrc.rename(home_netrc)
        home_netrc.chmod(0o644)
        with pytest.raises(exception.SourceError, match='netrc: .*too '
                                                        'permissive'):
            sources.open_image(url)
        home_netrc.chmod(0o600)
        assert b''.join(read_all(sources.open_image(url))[1]) == DATA


def test_malformed_url_is_one_source_error():
    with pytest.raises(exception.SourceError,
                       match=r'^http://\[::1/x: Invalid IPv6 URL$'):
        sources.open_image('http://user:pw@[::1/x')
