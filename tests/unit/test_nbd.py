import json
import os
import shutil

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks import nbd
from tests import images
from tests import standins

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))
GROWN = {'resized': True}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return standins.Standins(tmp_path, monkeypatch)


def busy(fake, device):
    pid = os.path.join(fake.root, 'sys', 'block', os.path.basename(device))
    os.makedirs(pid)
    open(os.path.join(pid, 'pid'), 'w').close()


def run(path, nbd_root, resize=GROWN, strict=True, lock=None):
    return nbd.ResizeFsBlockDevice('fs').execute(
        path=path, strict=strict, nbd_root=nbd_root, lock=lock,
        resize=resize)


def grown_copy(src, tmp_path):
    disk = str(tmp_path / 'disk')
    shutil.copyfile(src, disk)
    images.sh('qemu-img', 'resize', '-f', images.info(src)['format'], disk,
              str(96 * MiB))
    return disk


def test_resizes_through_the_first_free_device(fake, raw_image, tmp_path):
    nbd0, nbd1 = fake.nbd_devices(2)
    busy(fake, nbd0)
    disk = grown_copy(raw_image, tmp_path)
    blocks = images.fs_block_count(disk)

    result = run(disk, fake.dev)

    assert result['grown'] and result['resize2fs_status'] == 0
    assert images.fs_block_count(disk) == blocks * 96 // 64
    assert fake.calls() == [['qemu-nbd', '-c', nbd1, disk],
                            ['qemu-nbd', '-d', nbd1]]
    assert not os.path.islink(nbd1)
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize('strict, resize2fs_status', [(True, None),
                                                      (False, 1)])
def test_failures_are_results_and_the_device_is_released(
        fake, qcow2_image, tmp_path, strict, resize2fs_status):
    """The stand-in exports the qcow2 bytes as they are: e2fsck fails."""
    (nbd0,) = fake.nbd_devices(1)
    disk = grown_copy(qcow2_image, tmp_path)

    result = run(disk, fake.dev, strict=strict)

    assert result['grown'] is False and result['e2fsck_status'] == 8
    assert result['resize2fs_status'] == resize2fs_status
    assert fake.calls()[-1] == ['qemu-nbd', '-d', nbd0]


def test_not_resized_touches_nothing(fake):
    fake.nbd_devices(1)

    result = run('/i/disk', fake.dev, resize={'resized': False})

    assert result['grown'] is False and fake.calls() == []


def test_every_device_busy(fake):
    for device in fake.nbd_devices(2):
        busy(fake, device)

    result = run('/i/disk', fake.dev)

    assert result['grown'] is False and 'busy' in result['reason']
    assert fake.calls() == []


@pytest.mark.parametrize('root', ['dev', 'no-such-dir'])
def test_no_nbd_device_is_not_supported(tmp_path, root):
    os.makedirs(tmp_path / 'dev')

    with pytest.raises(exception.NotSupported) as caught:
        run('/i/disk', str(tmp_path / root))

    assert str(caught.value) == (
        'no /dev/nbd* device: load the nbd kernel module (modprobe nbd) to '
        'resize filesystems inside qcow2 images')


def test_revert_releases_the_lock(tmp_path):
    lock = {'name': 'nbd', 'path': str(tmp_path), 'last': False}
    run('/i/disk', str(tmp_path), resize={'resized': False}, lock=lock)
    task = nbd.ResizeFsBlockDevice('fs')

    for _ in range(2):
        task.revert(path='/i/disk', strict=True, nbd_root='/dev', lock=lock,
                    resize=GROWN, result=FAILED, flow_failures={})

    assert not locks.is_held('nbd')


def test_plan_shows_attach_resize_detach():
    shown = nbd.ResizeFsBlockDevice(
        'fs', inject={'path': '/i/disk', 'strict': False, 'nbd_root': '/dev',
                      'lock': None},
        wire={'resize': 'resize-root'}).describe()

    device = '/dev/<free nbdN>'
    assert shown['command'] == [['qemu-nbd', '-c', device, '/i/disk'],
                                ['e2fsck', '-fp', device],
                                ['resize2fs', device],
                                ['qemu-nbd', '-d', device]]
    assert 'only when <resized of resize-root> is true' in shown['notes']
