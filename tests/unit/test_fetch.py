import filecmp
import hashlib
import json
import os
import shutil
import socket

import pytest
from taskflow import task as tf_task
from taskflow.types import failure

from imagepipe import exception
from imagepipe.sources.base import CHUNK_SIZE
from imagepipe.tasks import locks
from imagepipe.tasks.fetch import Fetch
from tests import httpserver
from tests import images

IMAGE_ID = '0f6c1d3e-2b0a-4c55-9b1e-7d8a3c2e4f10'


def sha512(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha512').hexdigest()


def data_chunks(path):
    """How many CHUNK_SIZE blocks of ``path`` hold a non-zero byte."""
    with open(path, 'rb') as f:
        return sum(1 for chunk in iter(lambda: f.read(CHUNK_SIZE), b'')
                   if chunk.count(0) != len(chunk))


@pytest.fixture
def cache(tmp_path):
    """The base dir, and the task's path arguments in it."""
    base_dir = tmp_path / '_base'
    base_dir.mkdir()
    return {'part': str(base_dir / 'abc.part'), 'base': str(base_dir / 'abc'),
            'dir': base_dir}


@pytest.fixture
def lock(tmp_path):
    spec = {'name': 'abc', 'path': str(tmp_path / 'locks'), 'external': True,
            'last': False}
    yield spec
    locks.release(spec['name'])


@pytest.fixture
def server(image_dir, raw_image, qcow2_image):
    with httpserver.Server(image_dir) as srv:
        srv.add_image(IMAGE_ID, os.path.basename(raw_image),
                      size=os.path.getsize(raw_image), disk_format='raw',
                      os_hash_algo='sha512', os_hash_value=sha512(raw_image))
        yield srv


def glance(server):
    return {'api_servers': [server.base_url]}


def fetch(image, cache, glance=None, lock=None, task=None):
    task = task or Fetch('fetch')
    return task.execute(image=image, glance=glance, part=cache['part'],
                        base=cache['base'], lock=lock)


def test_from_path(raw_image, cache):
    result = fetch(raw_image, cache)
    assert result == {'cached': False, 'path': cache['part'],
                      'size': os.path.getsize(raw_image),
                      'disk_format': None, 'checksum': None}
    assert json.loads(json.dumps(result)) == result
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_from_file_url(qcow2_image, cache):
    result = fetch('file://' + qcow2_image, cache)
    assert result['size'] == os.path.getsize(qcow2_image)
    assert filecmp.cmp(qcow2_image, cache['part'], shallow=False)


def test_http_raw_stays_sparse(server, raw_image, cache):
    result = fetch(server.url(os.path.basename(raw_image)), cache)
    assert len(server.requests) == 1
    assert os.path.getsize(cache['part']) == result['size'] == 64 * 2**20
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)
    # Only the chunks holding data are allocated (7 of 64 here), plus a
    # block of file system metadata.
    assert images.allocated(cache['part']) <= (
        data_chunks(raw_image) * CHUNK_SIZE + 64 * 1024)


def _patterned(path):
    """3 MiB: data and zeros 4 KiB each in turn, one stray byte, random.

    Returns how many 4 KiB blocks hold data.
    """
    block = 4096
    first = b''.join(os.urandom(block) + bytes(block)
                     for _ in range(CHUNK_SIZE // (2 * block)))
    second = bytearray(CHUNK_SIZE)
    second[3 * block + 1] = 1
    with open(path, 'wb') as f:
        f.write(first + bytes(second) + os.urandom(CHUNK_SIZE))
    return CHUNK_SIZE // (2 * block) + 1 + CHUNK_SIZE // block


@pytest.mark.parametrize('kept', [0, 5 * 4096 + 123])
def test_zero_blocks_inside_a_chunk_become_holes(image_dir, cache, kept):
    path = os.path.join(image_dir, 'patterned.raw')
    data_blocks = _patterned(path)
    with open(path, 'rb') as src, open(cache['part'], 'wb') as dst:
        dst.write(src.read(kept))    # a resume from an unaligned offset
    with httpserver.Server(image_dir) as srv:
        fetch(srv.url('patterned.raw'), cache)
    assert filecmp.cmp(path, cache['part'], shallow=False)
    assert data_blocks * 4096 <= images.allocated(cache['part']) <= (
        (data_blocks + 2) * 4096 + 64 * 1024)


def test_glance_verified_and_declared(server, raw_image, cache):
    result = fetch(IMAGE_ID, cache, glance(server))
    assert result['disk_format'] == 'raw'
    assert result['checksum'] == ['sha512', sha512(raw_image)]
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_resume_downloads_only_the_rest(server, raw_image, cache):
    kept = 40 * 2**20 + 12345
    with open(raw_image, 'rb') as src, open(cache['part'], 'wb') as dst:
        dst.write(src.read(kept))
    result = fetch(IMAGE_ID, cache, glance(server))
    assert server.ranges() == [None, f'bytes={kept}-']
    assert server.sent == os.path.getsize(raw_image) - kept
    assert result['checksum'] == ['sha512', sha512(raw_image)]
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_resumed_prefix_is_hashed(server, raw_image, cache):
    with open(raw_image, 'rb') as src, open(cache['part'], 'wb') as dst:
        dst.write(src.read(2**20))
        dst.seek(1000)
        dst.write(b'X')
    with pytest.raises(exception.ImageUnacceptable,
                       match='sha512 checksum .* does not match'):
        fetch(IMAGE_ID, cache, glance(server))
    assert not os.path.exists(cache['part'])


def test_range_ignored_starts_over(image_dir, raw_image, cache):
    with open(cache['part'], 'wb') as f:
        f.write(b'\xff' * 10 * 2**20)
    with httpserver.Server(image_dir, ignore_range=True) as srv:
        fetch(srv.url(os.path.basename(raw_image)), cache)
        assert srv.ranges() == [f'bytes={10 * 2**20}-']
    # Zero chunks were skipped, yet none of the old bytes survived.
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_no_resume_without_range_support(raw_image, cache):
    with open(cache['part'], 'wb') as f:
        f.write(b'\xff' * 2 * os.path.getsize(raw_image))
    fetch(raw_image, cache)
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_size_mismatch(server, raw_image, cache):
    server.add_image(IMAGE_ID, os.path.basename(raw_image), size=12345)
    with pytest.raises(exception.ImageUnacceptable,
                       match='the source declared 12345'):
        fetch(IMAGE_ID, cache, glance(server))
    assert not os.path.exists(cache['part'])


def test_checksum_mismatch(server, raw_image, cache):
    server.add_image(IMAGE_ID, os.path.basename(raw_image),
                     checksum='0' * 32)
    with pytest.raises(exception.ImageUnacceptable,
                       match='md5 checksum .* does not match the declared 0'):
        fetch(IMAGE_ID, cache, glance(server))
    assert not os.path.exists(cache['part'])


def test_cut_connection(image_dir, qcow2_image, cache):
    with httpserver.Server(image_dir, cut_after=300000) as srv:
        with pytest.raises(exception.SourceError,
                           match='download cut at byte 300000 .* gave up '
                                 'after 0 Range retries'):
            fetch(srv.url(os.path.basename(qcow2_image)), cache,
                  {'download_retries': 0})
    assert not os.path.exists(cache['part'])


def test_unreachable(cache):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        url = f'http://127.0.0.1:{s.getsockname()[1]}/disk.qcow2'
    with pytest.raises(exception.SourceError, match='unreachable') as err:
        fetch(url, cache)
    assert '\n' not in str(err.value)
    assert os.listdir(cache['dir']) == []


def test_cached_base_makes_no_request(server, raw_image, cache):
    shutil.copy(raw_image, cache['base'])
    result = fetch(IMAGE_ID, cache, glance(server))
    assert result == {'cached': True, 'path': cache['base']}
    assert server.requests == []
    assert not os.path.exists(cache['part'])


def test_progress(server, raw_image, cache):
    task = Fetch('fetch')
    seen = []
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS,
                           lambda event, details: seen.append(
                               details['progress']))
    fetch(server.url(os.path.basename(raw_image)), cache, task=task)
    assert 2 <= len(seen) <= 101
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_lock_held_then_released_by_revert(raw_image, cache, lock):
    task = Fetch('fetch')
    fetch(raw_image, cache, lock=lock, task=task)
    assert locks.is_held('abc')
    assert os.path.exists(os.path.join(lock['path'], 'nova-abc'))
    task.revert(result=failure.Failure.from_exception(RuntimeError('x')),
                flow_failures={}, image=raw_image, glance=None,
                part=cache['part'], base=cache['base'], lock=lock)
    assert not locks.is_held('abc')
    assert not os.path.exists(cache['part'])


def test_revert_tolerates_missing_part(cache):
    Fetch('fetch').revert(result={'cached': True, 'path': cache['base']},
                          image='x', glance=None, part=cache['part'],
                          base=cache['base'], lock=None)


def test_describe():
    task = Fetch('fetch', inject={'image': 'http://h/i.qcow2', 'glance': None,
                                  'part': '$B/h.part', 'base': '$B/h',
                                  'lock': {'name': 'h'}})
    shown = task.describe()
    assert shown['command'] == ['GET', 'http://h/i.qcow2', '-o', '$B/h.part']
    assert shown['creates'] == ['$B/h.part']
    assert shown['source'] == 'images.fetch' and shown['lock'] == 'h'
    assert any('$B/h exists' in note for note in shown['notes'])
    assert json.loads(json.dumps(shown)) == shown
