import errno
import filecmp
import json
import os
import shutil
import stat

import pytest

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks.convert import ConvertToRaw
from imagepipe.tasks.convert import convert_argv
from imagepipe.tasks.convert import supports_direct_io
from tests import images


def inspected(path, fmt, cached=False):
    """What Inspect returns for ``path``."""
    return {'cached': cached, 'path': path, 'format': fmt,
            'virtual_size': 64 * images.MiB, 'cluster_size': None}


def convert(cache, image, force_raw=True, pin_format=True, lock=None):
    return ConvertToRaw('convert').execute(
        image=image, part=cache['part'], converted=cache['converted'],
        base=cache['base'], force_raw=force_raw, pin_format=pin_format,
        lock=lock)


def revert(cache, result, lock=None):
    ConvertToRaw('convert').revert(
        result=result, image=None, part=cache['part'],
        converted=cache['converted'], base=cache['base'], force_raw=True,
        pin_format=True, lock=lock)


@pytest.mark.parametrize('fixture', ['qcow2_image', 'compressed_qcow2_image'])
def test_qcow2_to_sparse_raw(request, fixture, raw_image, cache, tmp_path):
    shutil.copy(request.getfixturevalue(fixture), cache['part'])
    lock = {'name': 'abc', 'path': str(tmp_path / 'locks')}
    result = convert(cache, inspected(cache['part'], 'qcow2'), lock=lock)
    assert result == {'converted': True, 'path': cache['converted'],
                      'format': 'raw'}
    assert json.loads(json.dumps(result)) == result
    assert not os.path.exists(cache['part'])
    assert images.info(cache['converted'])['format'] == 'raw'
    assert filecmp.cmp(raw_image, cache['converted'], shallow=False)
    assert images.allocated(cache['converted']) <= (
        images.allocated(raw_image) + images.MiB)
    assert locks.is_held('abc')
    revert(cache, result, lock)
    assert not os.path.exists(cache['converted'])
    assert not locks.is_held('abc')


def test_rerun_after_part_removed_only_verifies(qcow2_image, cache):
    shutil.copy(qcow2_image, cache['part'])
    image = inspected(cache['part'], 'qcow2')
    first = convert(cache, image)
    before = os.stat(cache['converted'])
    assert convert(cache, image) == first
    after = os.stat(cache['converted'])
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino,
                                                 before.st_mtime_ns)


@pytest.mark.parametrize('image, force_raw', [
    (inspected('/b/abc.part', 'raw'), True),
    (inspected('/b/abc', 'qcow2', cached=True), True),
    (inspected('/b/abc.part', 'qcow2'), False),
])
def test_not_converted(cache, image, force_raw):
    result = convert(cache, image, force_raw=force_raw)
    assert result == {'converted': False, 'path': image['path'],
                      'format': image['format']}


def test_output_not_raw_rejected(qcow2_image, cache):
    # A qcow2 whose guest disk holds a qcow2 file: converted to raw, the
    # output still reads as qcow2 (the classic format-probing attack).
    images.sh('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', qcow2_image,
              cache['part'])
    with pytest.raises(exception.ImageUnacceptable,
                       match='Converted to raw, but format is now qcow2'):
        convert(cache, inspected(cache['part'], 'qcow2'))
    revert(cache, None)
    assert os.listdir(cache['dir']) == []


def test_convert_failure(cache):
    with open(cache['part'], 'wb') as f:
        f.write(b'not a qcow2 image' * 100)
    with pytest.raises(exception.ImageUnacceptable,
                       match='unable to convert image to raw'):
        convert(cache, inspected(cache['part'], 'qcow2'))
    revert(cache, None)
    assert os.listdir(cache['dir']) == ['abc.part']


def test_without_direct_io_falls_back_to_writeback(
        monkeypatch, qcow2_image, raw_image, cache, tmp_path):
    # tmpfs accepts O_DIRECT since Linux 6.6, so nothing here refuses it:
    # make opening with O_DIRECT fail the way older tmpfs did.
    real_open = os.open

    def no_direct_io(path, flags, *args, **kwargs):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, 'open', no_direct_io)
    assert not supports_direct_io(str(tmp_path / 'probe'))
    shutil.copy(qcow2_image, cache['part'])
    convert(cache, inspected(cache['part'], 'qcow2'))
    assert filecmp.cmp(raw_image, cache['converted'], shallow=False)
    assert os.listdir(cache['dir']) == ['abc.converted']


def test_direct_io_probe_leaves_nothing(tmp_path):
    assert supports_direct_io(str(tmp_path / 'probe'))
    assert os.listdir(tmp_path) == []


def test_argv():
    assert convert_argv('qcow2', 'p', 'c') == [
        'qemu-img', 'convert', '-t', 'none', '-O', 'raw', '-f', 'qcow2', '-W',
        '-p', 'p', 'c']
    assert '-f' not in convert_argv('qcow2', 'p', 'c', pin_format=False)


def test_describe():
    task = ConvertToRaw('convert', inject={
        'part': '$B/h.part', 'converted': '$B/h.converted', 'base': '$B/h',
        'force_raw': True, 'pin_format': True, 'lock': None},
        wire={'image': 'inspect-root'})
    shown = task.describe()
    assert shown['command'] == [
        'qemu-img', 'convert', '-t', 'none', '-O', 'raw', '-f',
        '<format of inspect-root>', '-W', '-p', '$B/h.part', '$B/h.converted']
    assert shown['creates'] == ['$B/h.converted']
    assert shown['removes'] == ['$B/h.part']
    assert json.loads(json.dumps(shown)) == shown
    task = ConvertToRaw('convert', inject={**task.inject, 'force_raw': False},
                        wire={'image': 'inspect-root'})
    assert task.describe()['command'] is None


def test_a_base_published_meanwhile_by_another_run_is_used(cache,
                                                            raw_image):
    """Two runs resumed on one image share the .part: the first publishes
    the base and consumes the part; the second must take the base, not
    fail on the vanished part."""
    shutil.copy(raw_image, cache['base'])
    result = convert(cache, inspected(cache['part'], 'qcow2'))
    assert result == {'converted': False, 'path': cache['base'],
                      'format': 'raw'}
    assert not os.path.exists(cache['converted'])


@pytest.mark.parametrize('planted', ['abc.converted',
                                     'abc.converted.directio'])
def test_a_planted_link_is_refused(qcow2_image, cache, tmp_path, planted):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    shutil.copy(qcow2_image, cache['part'])
    os.symlink(victim, cache['dir'] / planted)

    with pytest.raises(exception.ImagepipeError,
                       match=f"^{cache['dir']}/{planted} is a symbolic "
                             'link: refusing to'):
        convert(cache, inspected(cache['part'], 'qcow2'))
    revert(cache, None)

    assert victim.read_bytes() == b'keep'
    assert os.path.islink(cache['dir'] / planted)


def test_the_output_is_never_more_readable_than_the_download(qcow2_image,
                                                             cache):
    shutil.copy(qcow2_image, cache['part'])
    os.chmod(cache['part'], 0o600)
    old = os.umask(0)
    try:
        convert(cache, inspected(cache['part'], 'qcow2'))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(cache['converted']).st_mode) == 0o600
