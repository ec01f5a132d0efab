"""The backing file of an instance disk, read from its qcow2 header."""

import os
import struct

import pytest

from imagepipe.cache import qcow2
from imagepipe.tasks import safefs
from tests import images


def test_backing_file_name_of_a_real_overlay(tmp_path):
    base = tmp_path / ('a' * 40)
    base.write_bytes(b'\0' * 65536)
    disk = tmp_path / 'disk'
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b',
              str(base), str(disk))
    assert qcow2.backing_name(str(disk)) == ('qcow2', 'a' * 40)


def test_qcow2_without_backing_and_raw(tmp_path):
    disk = tmp_path / 'disk'
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', str(disk), '1M')
    assert qcow2.backing_name(str(disk)) == ('qcow2', None)
    raw = tmp_path / 'raw'
    raw.write_bytes(b'\0' * 512)
    assert qcow2.backing_name(str(raw)) == ('raw', None)


@pytest.mark.parametrize('header', [
    qcow2.MAGIC + b'\0\0\0\3',                                   # truncated
    qcow2.MAGIC + struct.pack('>IQI', 9, 0, 0),                  # version
    qcow2.MAGIC + struct.pack('>IQI', 3, 10 ** 9, 20),           # past end
    qcow2.MAGIC + struct.pack('>IQI', 3, 24, 5000) + b'x' * 40,  # too long
])
def test_corrupt_header(tmp_path, header):
    disk = tmp_path / 'disk'
    disk.write_bytes(header)
    with pytest.raises(qcow2.Corrupt):
        qcow2.backing_name(str(disk))


def test_link_never_followed(tmp_path):
    target = tmp_path / 'target'
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', str(target), '1M')
    os.symlink(target, tmp_path / 'disk')
    with pytest.raises(safefs.UnsafePath):
        qcow2.backing_name(str(tmp_path / 'disk'))
