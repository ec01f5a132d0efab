"""imagepipe.cache.volumes against the stand-in LVM commands (no
device-mapper here): which volumes are an instance's, how each release
clears them, one lvremove."""

import os

import pytest

from imagepipe.cache import volumes
from imagepipe.flows import root_lvm
from tests import images
from tests import standins

MiB = images.MiB
SETTINGS = {'images_volume_group': 'vg0', 'images_type_effective': 'lvm',
            'volume_clear': 'shred', 'volume_clear_size': 2}


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = standins.Standins(tmp_path, monkeypatch)
    monkeypatch.setattr(volumes, 'DEV', fake.dev)
    return fake


def make_lv(fake, instance, disk, size=8 * MiB):
    path = fake.lv_path(root_lvm.lv_name(instance, disk))
    with open(path, 'wb') as f:
        f.truncate(size)
    return path


@pytest.mark.parametrize('lv, instance', [
    ('vm1_disk', 'vm1'), ('vm__1_disk', 'vm_1'), ('vm1_disk__local', 'vm1'),
    ('vm1', None), ('_disk', None), ('vm_1_disk', None)])
def test_owner(lv, instance):
    assert volumes.owner(lv) == instance


def test_only_the_instances_volumes_cleared_then_removed(fake):
    mine = [make_lv(fake, 'vm', 'disk'), make_lv(fake, 'vm', 'disk.local')]
    others = [make_lv(fake, 'vm_2', 'disk'), make_lv(fake, 'vm2', 'disk')]
    paths = volumes.of_instance('icehouse', SETTINGS, 'vm')
    assert paths == sorted(mine)
    volumes.destroy('icehouse', SETTINGS, paths)
    assert [p for p in mine + others if os.path.exists(p)] == others
    calls = fake.calls()
    assert calls[0] == ['lvs', '--noheadings', '-o', 'lv_name', 'vg0']
    wipes = [c for c in calls if c[0] == 'shred']
    assert wipes == [['shred', '-n3', f'-s{2 * MiB}', p] for p in paths]
    assert calls[-1] == ['lvremove', '-f', *paths]


def test_before_icehouse_the_whole_volume_is_zeroed(fake):
    path = make_lv(fake, 'vm', 'disk')
    paths = volumes.of_instance('grizzly', SETTINGS, 'vm')
    volumes.destroy('grizzly', SETTINGS, paths)
    assert fake.calls('shred') == [['shred', '-n0', '-z', f'-s{8 * MiB}',
                                    path]]
    assert not os.path.exists(path)


def test_volume_clear_none_removes_without_clearing(fake):
    make_lv(fake, 'vm', 'disk')
    settings = {**SETTINGS, 'volume_clear': 'none'}
    volumes.destroy('juno', settings,
                    volumes.of_instance('juno', settings, 'vm'))
    assert fake.calls('shred', 'blockdev') == []
    assert os.listdir(os.path.join(fake.dev, 'vg0')) == []


@pytest.mark.parametrize('release, images_type, looks', [
    ('folsom', 'raw', True), ('icehouse', 'qcow2', True),
    ('juno', 'qcow2', False), ('gazpacho', 'raw', False),
    ('gazpacho', 'lvm', True), ('essex', 'raw', False)])
def test_which_releases_look_at_lvm(fake, release, images_type, looks):
    path = make_lv(fake, 'vm', 'disk')
    settings = {**SETTINGS, 'images_type_effective': images_type}
    assert volumes.of_instance(release, settings, 'vm') == (
        [path] if looks else [])


def test_no_volume_group_directory_no_lvs_call(fake):
    settings = {**SETTINGS, 'images_volume_group': 'vg9'}
    assert volumes.of_instance('juno', settings, 'vm') == []
    assert fake.calls() == []
