import hashlib
import socket

import pytest

from imagepipe import exception
from imagepipe import sources
from imagepipe.sources import base
from tests import httpserver

IMAGE_ID = '6b1b4c5e-0a3e-4d59-9a51-3f1ad0d6d2a1'
DATA = bytes(range(256)) * (12 * 1024 + 7)   # 3 MiB and a bit


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


def read_all(source, offset=0):
    with source.read(offset) as stream:
        chunks = list(stream)
    return stream, chunks


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
    stream, chunks = read_all(source, 1000)
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
    stream, chunks = read_all(source, 5000)
    assert (stream.offset, stream.total) == (5000, len(DATA))
    assert b''.join(chunks) == DATA[5000:]
    assert server.ranges() == [None, 'bytes=5000-']


def test_http_range_ignored_starts_over(served):
    with httpserver.Server(served, ignore_range=True) as srv:
        stream, chunks = read_all(sources.open_image(srv.url('img.bin')),
                                  5000)
    assert stream.offset == 0
    assert b''.join(chunks) == DATA


def test_http_range_past_the_end_starts_over(server):
    source = sources.open_image(server.url('img.bin'))
    stream, chunks = read_all(source, len(DATA))
    assert stream.offset == 0 and b''.join(chunks) == DATA
    assert server.ranges() == [f'bytes={len(DATA)}-', None]


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


def test_http_cut_connection(served):
    with httpserver.Server(served, cut_after=100000) as srv:
        source = sources.open_image(srv.url('img.bin'))
        with pytest.raises(exception.SourceError,
                           match=f'ended after 100000 of {len(DATA)} bytes'):
            read_all(source)


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
    stream, chunks = read_all(source, 10)
    assert stream.offset == 10 and b''.join(chunks) == DATA[10:]
    assert server.requests[-1] == {'method': 'GET', 'range': 'bytes=10-',
                                   'path': f'/v2/images/{IMAGE_ID}/file'}


def test_glance_tries_each_server(server):
    glance = {'api_servers': [closed_port_url(), server.base_url + '/']}
    source = sources.open_image(IMAGE_ID, glance)
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
                           match=r'authentication required \(HTTP 401\)'):
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
