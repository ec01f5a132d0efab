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
from imagepipe import sources
from imagepipe.sources.base import CHUNK_SIZE
from imagepipe.tasks import formats
from imagepipe.tasks import locks
from imagepipe.tasks.fetch import Fetch
from imagepipe.tasks.fetch import download
from imagepipe.tasks.inspect import Inspect
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


class Crash(BaseException):
    """Stands for a SIGKILL: nothing catches it, the .part stays."""


def crash_after_first_chunk(image, cache, glance=None):
    """Start a fetch and stop it dead at its first progress report; return
    the bytes the .part kept."""
    task = Fetch('fetch')

    def crash(event, details):
        raise Crash()
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, crash)
    with pytest.raises(Crash):
        fetch(image, cache, glance, task=task)
    have = os.path.getsize(cache['part'])
    assert have > 0
    return have


def test_resume_downloads_only_the_rest(server, raw_image, cache):
    kept = crash_after_first_chunk(IMAGE_ID, cache, glance(server))
    server.reset()
    sent = server.sent
    result = fetch(IMAGE_ID, cache, glance(server))
    assert [g['range'] for g in server.gets()] == [None, f'bytes={kept}-']
    assert server.sent - sent == os.path.getsize(raw_image) - kept
    assert result['checksum'] == ['sha512', sha512(raw_image)]
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_part_without_a_recorded_version_starts_over(server, raw_image,
                                                     cache):
    with open(raw_image, 'rb') as src, open(cache['part'], 'wb') as dst:
        dst.write(src.read(40 * 2**20))
    fetch(server.url(os.path.basename(raw_image)), cache)
    assert server.ranges() == [None]
    assert filecmp.cmp(raw_image, cache['part'], shallow=False)


def test_resumed_prefix_is_hashed(server, raw_image, cache):
    crash_after_first_chunk(IMAGE_ID, cache, glance(server))
    with open(cache['part'], 'r+b') as part:
        part.seek(1000)
        part.write(b'X')
    with pytest.raises(exception.ImageUnacceptable,
                       match='sha512 checksum .* does not match'):
        fetch(IMAGE_ID, cache, glance(server))
    assert not os.path.exists(cache['part'])


def test_range_ignored_starts_over(image_dir, raw_image, cache):
    with httpserver.Server(image_dir, ignore_range=True) as srv:
        url = srv.url(os.path.basename(raw_image))
        crash_after_first_chunk(url, cache)
        with open(cache['part'], 'r+b') as f:
            f.write(b'\xff' * 10 * 2**20)
        srv.reset()
        fetch(url, cache)
        assert [g['range'] for g in srv.gets()] == [f'bytes={10 * 2**20}-']
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
    """A run that found the base cached made no .part: its revert removes
    nothing, above all not the cached base other instances use."""
    with open(cache['base'], 'wb') as f:
        f.write(b'cached')
    Fetch('fetch').revert(result={'cached': True, 'path': cache['base']},
                          image='x', glance=None, part=cache['part'],
                          base=cache['base'], lock=None)
    assert os.listdir(cache['dir']) == ['abc']
    with open(cache['base'], 'rb') as f:
        assert f.read() == b'cached'


def test_describe():
    task = Fetch('fetch', inject={'image': 'http://h/i.qcow2', 'glance': None,
                                  'part': '$B/h.part', 'base': '$B/h',
                                  'lock': {'name': 'h'}})
    shown = task.describe()
    assert shown['command'] == ['GET', 'http://h/i.qcow2', '-o', '$B/h.part']
    assert shown['notes'][0] == "cache key: sha1 of 'http://h/i.qcow2'"
    assert shown['creates'] == ['$B/h.part']
    assert shown['source'] == 'images.fetch' and shown['lock'] == 'h'
    assert any('$B/h exists' in note for note in shown['notes'])
    assert json.loads(json.dumps(shown)) == shown


# -- a continued download proves the source is the same ----------------------

def _two_versions(directory):
    """Two 3 MiB images of the same length: paths of v1 and v2."""
    made = []
    for n in (1, 2):
        path = os.path.join(directory, f'v{n}.bin')
        with open(path, 'wb') as f:
            f.write(os.urandom(3 * CHUNK_SIZE))
        made.append(path)
    return made


def _serve_as(path, served):
    """Serve ``path``'s bytes as ``served`` from now on (a new file)."""
    shutil.copyfile(path, served + '.new')
    os.replace(served + '.new', served)


def test_glance_image_changed_since_the_crash(tmp_path, cache):
    v1, v2 = _two_versions(str(tmp_path))
    with httpserver.Server(tmp_path) as srv:
        srv.add_image(IMAGE_ID, 'v1.bin', size=os.path.getsize(v1),
                      os_hash_algo='sha512', os_hash_value=sha512(v1))
        crash_after_first_chunk(IMAGE_ID, cache, glance(srv))
        srv.add_image(IMAGE_ID, 'v2.bin', size=os.path.getsize(v2),
                      os_hash_algo='sha512', os_hash_value=sha512(v2))
        srv.reset()
        result = fetch(IMAGE_ID, cache, glance(srv))
        assert [g['range'] for g in srv.gets()
                if g['path'].endswith('/file')] == [None]
    assert result['checksum'] == ['sha512', sha512(v2)]
    assert filecmp.cmp(v2, cache['part'], shallow=False)


def test_local_file_changed_since_the_crash(tmp_path, cache):
    v1, v2 = _two_versions(str(tmp_path))
    image = str(tmp_path / 'image.bin')
    _serve_as(v1, image)
    crash_after_first_chunk(image, cache)
    _serve_as(v2, image)
    fetch(image, cache)
    assert filecmp.cmp(v2, cache['part'], shallow=False)


def _replace_at_first_report(task, new, served):
    replaced = []

    def replace(event, details):
        if not replaced:
            _serve_as(new, served)
            replaced.append(True)
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, replace)


def test_image_changed_during_the_download_starts_over(tmp_path, cache,
                                                       no_retry_delay):
    """A cut connection continued from another version would splice: the
    If-Range answer shows the change, the download starts over, once."""
    v1, v2 = _two_versions(str(tmp_path))
    served = str(tmp_path / 'image.bin')
    _serve_as(v1, served)
    task = Fetch('fetch')
    _replace_at_first_report(task, v2, served)
    with httpserver.Server(tmp_path, cut_after=CHUNK_SIZE) as srv:
        result = fetch(srv.url('image.bin'), cache,
                       {'download_retries': 3}, task=task)
        # cut at 1 MiB, the Range answered with the whole new version,
        # which is then read from the start (and continued as it is cut)
        assert srv.ranges()[:3] == [None, f'bytes={CHUNK_SIZE}-', None]
        assert srv.header('If-Range')[1] is not None
    assert result['size'] == os.path.getsize(v2)
    assert filecmp.cmp(v2, cache['part'], shallow=False)


def test_cut_without_a_version_starts_over_once(tmp_path, cache,
                                                no_retry_delay):
    v1, _ = _two_versions(str(tmp_path))
    with httpserver.Server(tmp_path, cut_after=CHUNK_SIZE,
                           validators=False) as srv:
        url = srv.url('v1.bin')
        with pytest.raises(exception.SourceError) as err:
            fetch(url, cache, {'download_retries': 3})
        assert srv.ranges() == [None, None]
    assert str(err.value) == (
        f'{url}: download cut at byte {CHUNK_SIZE} of {3 * CHUNK_SIZE} (the '
        'connection was closed); the source names no version (ETag, '
        'Last-Modified or checksum) the rest could be proven to belong to')
    assert not os.path.exists(cache['part'])


# -- short chunks from a slow link -------------------------------------------

class _Trickle:
    """A transport handing over the given piece sizes, as a slow link
    does (no real server can be made to cut its reads at chosen bytes)."""

    def __init__(self, data, sizes):
        self.data, self.sizes, self.pos = data, sizes, 0

    def read1(self, n):
        size = min(n, self.sizes[self.pos % len(self.sizes)] if self.sizes
                   else n)
        piece = self.data[self.pos:self.pos + size]
        self.pos += len(piece)
        return piece

    def close(self):
        pass


class _TrickleSource(sources.base.ImageSource):
    supports_range = True

    def __init__(self, data, sizes):
        super().__init__('trickle')
        self.data, self.sizes, self.size = data, sizes, len(data)

    def read(self, offset=0, identity=None):
        offset = offset if identity == {'v': 1} else 0
        return sources.base.Stream(
            self.ref, _Trickle(self.data[offset:], self.sizes), offset,
            self.size, self.size - offset, identity={'v': 1})


@pytest.mark.parametrize('sizes', [[1], [4095, 1, 4097, 333, 70001],
                                   [12289, 2048]])
def test_short_unaligned_chunks_keep_zero_skipping_exact(
        tmp_path, cache, monkeypatch, sizes):
    monkeypatch.setattr(sources.base, 'HAND_OVER_AFTER', 0)
    path = str(tmp_path / 'patterned.raw')
    data_blocks = _patterned(path)
    with open(path, 'rb') as f:
        data = f.read()
    if sizes == [1]:   # a byte at a time: the first 64 KiB only
        data = data[:64 * 1024]
        data_blocks = 8
    seen = []
    download(_TrickleSource(data, sizes), cache['part'],
             lambda fraction, **details: seen.append(details['done']))
    with open(cache['part'], 'rb') as f:
        assert f.read() == data
    assert data_blocks * 4096 <= images.allocated(cache['part']) <= (
        (data_blocks + 2) * 4096 + 64 * 1024)
    assert len(seen) > len(data) // CHUNK_SIZE + 1   # short chunks went by


# -- an image too large for the flavor stops at its header -------------------

GiB = 1024 ** 3


@pytest.fixture(scope='module')
def big(tmp_path_factory):
    """A qcow2 of 2 GiB virtual size holding 12 MiB of random data."""
    d = tmp_path_factory.mktemp('big')
    raw = str(d / 'big.raw')
    with open(raw, 'wb') as f:
        f.write(os.urandom(12 * 2**20))
        f.truncate(2 * GiB)
    made = images.convert(raw, str(d / 'big.qcow2'), 'qcow2')
    os.unlink(raw)
    return made


def fetch_limited(image, cache, max_size, written):
    """Fetch ``image`` with the flavor's ``max_size``; ``written`` gets the
    bytes each progress report says the .part holds."""
    task = Fetch('fetch')
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS,
                           lambda event, details: written.append(
                               details['done']))
    return task.execute(image=image, glance=None, part=cache['part'],
                        base=cache['base'], max_size=max_size, lock=None)


def test_too_large_stops_before_writing_with_the_inspection_refusal(
        big, cache):
    written = []
    with pytest.raises(exception.FlavorDiskTooSmall) as early:
        fetch_limited(big, cache, GiB, written)
    assert written == []  # refused on the first chunk, before writing it
    assert os.listdir(cache['dir']) == []
    assert str(early.value) == (
        f"image {cache['part']} is unacceptable: Flavor's disk is too small "
        'for requested image: virtual size 2.0 GiB exceeds root disk 1.0 '
        'GiB: use --root-gb 2 or more')
    # the whole download, inspected, is refused in the same words
    fetched = fetch(big, cache)
    with pytest.raises(exception.FlavorDiskTooSmall) as late:
        Inspect('inspect').execute(
            fetched=fetched, part=cache['part'], base=cache['base'],
            max_size=GiB, expected_format=None, vmdk_allowed_types=None,
            lock=None)
    assert str(late.value) == str(early.value)


def test_an_image_that_fits_is_fetched_whole_looked_at_once(
        big, cache, monkeypatch):
    looked = []
    eat = formats.HeaderSize.eat
    monkeypatch.setattr(formats.HeaderSize, 'eat', lambda self, chunk: (
        looked.append(len(chunk)), eat(self, chunk))[1])
    written = []
    result = fetch_limited(big, cache, 2 * GiB, written)
    assert filecmp.cmp(big, cache['part'], shallow=False)
    assert result['size'] == written[-1] == os.path.getsize(big)
    assert looked == [CHUNK_SIZE]  # the qcow2 header is in the first chunk


def test_raw_too_large_by_its_length(raw_image, cache):
    with pytest.raises(exception.FlavorDiskTooSmall,
                       match='virtual size 0.1 GiB exceeds root disk 0.0 '
                       'GiB: use --root-gb 1 or more'):
        fetch_limited(raw_image, cache, 32 * 2**20, [])
    assert os.listdir(cache['dir']) == []


def test_continued_part_shows_its_header(big, cache):
    """A .part continued after a crash holds the header: it is read back,
    so the refusal comes before any new byte is written."""
    crash_after_first_chunk(big, cache)
    written = []
    with pytest.raises(exception.FlavorDiskTooSmall,
                       match='virtual size 2.0 GiB exceeds root disk 1.0'):
        fetch_limited(big, cache, GiB, written)
    assert written == []
    assert os.listdir(cache['dir']) == []


def test_no_limit_no_look(big, cache, monkeypatch):
    monkeypatch.setattr(formats, 'HeaderSize', None)
    fetch(big, cache)
    assert filecmp.cmp(big, cache['part'], shallow=False)
