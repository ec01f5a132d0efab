import json
import os
import shutil

import pytest

from imagepipe.tasks import verify
from tests import images

MiB = images.MiB
GIB = 1024 ** 3


def check(*disks):
    return verify.VerifyDisks('verify').execute(disks=list(disks))


@pytest.fixture
def overlay(tmp_path, raw_image):
    base = str(tmp_path / 'base')
    shutil.copyfile(raw_image, base)
    disk = str(tmp_path / 'disk')
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', base, '-F',
              'raw', disk, str(128 * MiB))
    return base, disk


def test_whole_disks_pass(overlay, raw_image):
    base, disk = overlay
    result = check(verify.disk(disk, 'qcow2', 128 * MiB),
                   verify.disk(raw_image, 'raw', 64 * MiB),
                   verify.disk(disk, None, None),
                   verify.disk(raw_image, None, 64 * MiB))
    assert result == {'disks': [
        {'path': disk, 'format': 'qcow2', 'virtual_size': 128 * MiB},
        {'path': raw_image, 'format': 'raw', 'virtual_size': 64 * MiB},
        {'path': disk, 'format': 'qcow2', 'virtual_size': 128 * MiB},
        {'path': raw_image, 'format': 'raw', 'virtual_size': 64 * MiB}]}
    assert json.loads(json.dumps(result)) == result


def test_missing_disk(tmp_path):
    gone = str(tmp_path / 'vm1' / 'disk')
    with pytest.raises(verify.DiskNotMade,
                       match=f'^instance disk {gone} is missing$') as e:
        check(verify.disk(gone, 'raw', None))
    assert e.value.exit_code == 1


def test_a_directory_is_no_disk(tmp_path):
    with pytest.raises(verify.DiskNotMade,
                       match='is not a regular file or a block device$'):
        check(verify.disk(str(tmp_path), None, None))


def test_qcow2_expected_but_raw(raw_image):
    with pytest.raises(verify.DiskNotMade, match='is not a qcow2 image$'):
        check(verify.disk(raw_image, 'qcow2', None))


@pytest.mark.parametrize('fmt', ['qcow2', None])
def test_smaller_than_asked(overlay, fmt):
    _, disk = overlay
    with pytest.raises(verify.DiskNotMade,
                       match=f'is {128 * MiB} bytes, smaller than the '
                             f'{GIB} bytes asked for$'):
        check(verify.disk(disk, fmt, GIB))


def test_an_emptied_raw_disk_is_too_small(tmp_path):
    disk = tmp_path / 'disk'
    disk.write_bytes(b'')
    with pytest.raises(verify.DiskNotMade, match='is 0 bytes'):
        check(verify.disk(str(disk), 'raw', MiB))


def test_backing_file_gone(overlay):
    base, disk = overlay
    os.unlink(base)
    with pytest.raises(verify.DiskNotMade,
                       match=f'is backed by {base}, which is missing$'):
        check(verify.disk(disk, 'qcow2', None))


def test_raw_is_never_probed(overlay):
    """A raw disk holding a qcow2 header (a guest may write one) is
    measured as raw, as Nova's disk.info rule wants."""
    _, disk = overlay
    result = check(verify.disk(disk, 'raw', None))
    assert result['disks'][0]['format'] == 'raw'
    assert result['disks'][0]['virtual_size'] == os.path.getsize(disk)


def test_plan_lists_each_disk():
    task = verify.VerifyDisks('verify', inject={'disks': [
        verify.disk('/i/vm1/disk', 'qcow2', 10),
        verify.disk('/i/vm1/disk.swap', None, None)]})
    shown = task.describe()
    assert shown['command'] is None and shown['lock'] is None
    assert shown['notes'][-2:] == ['/i/vm1/disk: qcow2, at least 10 bytes',
                                   '/i/vm1/disk.swap: raw or qcow2']

