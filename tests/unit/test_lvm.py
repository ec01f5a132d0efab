import filecmp
import json
import os
import shutil
import subprocess
import uuid

import pytest
from taskflow import engines
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks import lvm
from tests import images
from tests import standins

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))
IMAGE = {'path': '/nova/_base/abc', 'virtual_size': 64 * MiB}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return standins.Standins(tmp_path, monkeypatch, vg_free=512 * MiB)


def volume_args(device, vg='vg0', size=96 * MiB, sparse=False,
                vgs_columns='size,free', check_size=True, volume_clear='zero',
                volume_clear_size=0, lock=None):
    return {'vg': vg, 'lv': os.path.basename(device), 'device': device,
            'size': size, 'sparse': sparse, 'vgs_columns': vgs_columns,
            'check_size': check_size, 'volume_clear': volume_clear,
            'volume_clear_size': volume_clear_size, 'lock': lock}


def create(device, image=IMAGE, **kw):
    return lvm.CreateVolume('lv').execute(image=image,
                                          **volume_args(device, **kw))


def remove(device, result, **kw):
    lvm.CreateVolume('lv').revert(image=IMAGE, result=result,
                                  flow_failures={'x': FAILED},
                                  **volume_args(device, **kw))


def write(base, device, method, base_format=None, lock=None):
    return lvm.WriteVolume('write').execute(
        base=base, device=device, method=method, base_format=base_format,
        lock=lock)


VGS = ['vgs', '--noheadings', '--nosuffix', '--separator', '|', '--units',
       'b', '-o', 'vg_size,vg_free', 'vg0']
LVS = ['lvs', '--noheadings', '--nosuffix', '--units', 'b', '-o', 'lv_size',
       'vg0/i_disk']


def test_create_grown_volume(fake):
    device = fake.lv_path('i_disk')

    result = create(device)

    assert result == {'device': device, 'size': 96 * MiB, 'resized': True,
                      'created': True}
    assert os.path.getsize(device) == 96 * MiB
    assert fake.calls() == [
        LVS, VGS, ['lvcreate', '-L', '100663296b', '-n', 'i_disk', 'vg0']]
    assert json.loads(json.dumps(result)) == result


def test_plan_matches_what_runs(fake):
    device = fake.lv_path('i_disk')
    task = lvm.CreateVolume('lv', inject={**volume_args(device),
                                          'image': IMAGE})

    task.execute(**task.inject)

    assert task.describe()['command'] == fake.calls('vgs', 'lvcreate')


def test_folsom_vgs_and_image_sized_volume(fake):
    device = fake.lv_path('i_disk')

    result = create(device, size=None, vgs_columns='free', check_size=False)

    assert result['size'] == 64 * MiB and result['resized'] is False
    assert fake.calls('vgs', 'lvcreate') == [
        ['vgs', '--noheadings', '--nosuffix', '--units', 'b', '-o',
         'vg_free', 'vg0'],
        ['lvcreate', '-L', '67108864b', '-n', 'i_disk', 'vg0']]


def test_sparse_volume_may_exceed_the_free_space(fake):
    device = fake.lv_path('i_disk')

    result = create(device, size=1024 * MiB, sparse=True)

    assert result['size'] == 1024 * MiB
    assert fake.calls('lvcreate') == [
        ['lvcreate', '-L', '67108864b', '--virtualsize', '1073741824b', '-n',
         'i_disk', 'vg0']]


def test_flavor_smaller_than_image(fake):
    device = fake.lv_path('i_disk')

    with pytest.raises(exception.FlavorDiskTooSmall):
        create(device, size=32 * MiB)
    unchecked = create(device, size=32 * MiB, check_size=False)

    assert unchecked['size'] == 64 * MiB and not unchecked['resized']


def test_insufficient_space(fake):
    device = fake.lv_path('i_disk')

    with pytest.raises(exception.NoSpace,
                       match='^Insufficient space on volume group vg0: '):
        create(device, size=1024 * MiB)
    assert fake.calls('lvcreate') == []


def test_execute_again_reuses_the_volume(fake):
    device = fake.lv_path('i_disk')
    first = create(device)

    assert create(device) == first
    assert len(fake.calls('lvcreate')) == 1
    with pytest.raises(exception.ImagepipeError, match='already exists'):
        create(device, size=128 * MiB)


@pytest.mark.parametrize('clear, clear_size, wipe', [
    ('zero', 0, ['shred', '-n0', '-z', '-s100663296']),
    ('zero', 1, ['shred', '-n0', '-z', '-s1048576']),
    ('shred', 0, ['shred', '-n3', '-s100663296']),
])
def test_revert_wipes_then_removes(fake, clear, clear_size, wipe):
    device = fake.lv_path('i_disk')
    lock = {'name': 'lv', 'path': fake.root, 'last': False}
    result = create(device, lock=lock)

    for _ in range(2):
        remove(device, result, volume_clear=clear,
               volume_clear_size=clear_size, lock=lock)

    assert not os.path.exists(device)
    assert not locks.is_held('lv')
    assert fake.calls('blockdev', 'shred', 'lvremove') == [
        ['blockdev', '--getsize64', device], wipe + [device],
        ['lvremove', '-f', device]]


def test_revert_without_wipe(fake):
    device = fake.lv_path('i_disk')
    result = create(device)

    remove(device, result, volume_clear='none')

    assert fake.calls('blockdev', 'shred', 'lvremove') == [
        ['lvremove', '-f', device]]


def test_revert_of_a_failed_create_leaves_the_volume(fake):
    device = fake.lv_path('i_disk')
    create(device)

    remove(device, FAILED)

    assert os.path.exists(device)
    assert fake.calls('shred', 'lvremove') == []


@pytest.mark.parametrize('method, head', [
    ('dd', ['dd']),
    ('convert', ['qemu-img', 'convert', '-t', 'none', '-O', 'raw', '-f']),
])
def test_write_puts_the_raw_base_into_the_volume(fake, raw_image, method,
                                                 head):
    device = fake.lv_path('i_disk')
    create(device)

    result = write(raw_image, device, method)

    assert filecmp.cmp(raw_image, device, shallow=False)
    assert result['device'] == device and result['method'] == method
    shown = lvm.WriteVolume('write', inject={
        'base': raw_image, 'device': device, 'method': method,
        'base_format': 'raw', 'lock': None}).describe()['command']
    assert shown[:len(head)] == head


def test_convert_writes_the_raw_content_of_a_qcow2_base(fake, raw_image,
                                                        qcow2_image):
    device = fake.lv_path('i_disk')
    create(device)

    result = write(qcow2_image, device, 'convert')

    assert result['base_format'] == 'qcow2'
    assert filecmp.cmp(raw_image, device, shallow=False)


def test_unknown_choices_are_config_errors(fake):
    with pytest.raises(exception.ConfigError, match='vgs_columns'):
        create(fake.lv_path('x'), vgs_columns='bogus')
    with pytest.raises(exception.ConfigError, match='write method'):
        write('/b', '/d', 'cat')


class Fetched(task.Task):
    def execute(self):
        return IMAGE


class Boom(task.Task):
    def execute(self):
        raise RuntimeError('boom')


def test_engine_wipes_and_removes_the_volume_when_the_flow_fails(
        fake, raw_image):
    device = fake.lv_path('i_disk')
    flow = linear_flow.Flow('f').add(
        Fetched('fetch-root', provides='fetch-root'),
        lvm.CreateVolume('root-create-volume', inject=volume_args(device),
                         wire={'image': 'fetch-root'}),
        lvm.WriteVolume('root-write-volume', inject={
            'base': raw_image, 'device': device, 'method': 'dd',
            'base_format': None, 'lock': None}),
        Boom('boom'))

    with pytest.raises(RuntimeError, match='boom'):
        engines.run(flow)

    assert not os.path.exists(device)
    assert fake.calls('shred', 'lvremove') == [
        ['shred', '-n0', '-z', f'-s{64 * MiB}', device],
        ['lvremove', '-f', device]]


def _device_mapper():
    if os.path.exists('/sys/module/dm_mod'):
        return True
    return subprocess.run(['dmsetup', 'version'],
                          capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which('lvcreate') is None,
                    reason='lvm2 is not installed')
class TestRealLvm:
    """The same tasks against a real volume group on a loop device."""

    @pytest.fixture
    def vg(self, tmp_path):
        if not _device_mapper():
            pytest.skip('no device-mapper: lvcreate fails here')
        backing = tmp_path / 'pv'
        with open(backing, 'wb') as f:
            f.truncate(256 * MiB)
        loop = images.sh('losetup', '-f', '--show', str(backing)).strip()
        name = f'imagepipe-{uuid.uuid4().hex[:8]}'
        try:
            images.sh('vgcreate', name, loop)
            yield name
        finally:
            subprocess.run(['vgremove', '-f', name], capture_output=True)
            subprocess.run(['pvremove', '-f', loop], capture_output=True)
            subprocess.run(['losetup', '-d', loop], capture_output=True)

    def test_create_write_revert(self, vg, raw_image):
        device = f'/dev/{vg}/i_disk'

        result = create(device, vg=vg)
        write(raw_image, device, 'convert')
        with open(raw_image, 'rb') as base, open(device, 'rb') as lv:
            assert lv.read(64 * MiB) == base.read()
        remove(device, result, vg=vg, volume_clear_size=1)

        assert result['size'] == 96 * MiB
        assert not os.path.exists(device)
