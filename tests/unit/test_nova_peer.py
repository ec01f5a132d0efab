"""Benchmark case 10's cheap parts: the fake Glance, the disk check and
the conductor's configuration.

The case itself (a venv with nova, real boots) runs only in the benchmark;
these check what it relies on: the fake Glance answers what glanceclient
asks, as glance-api does, a disk that is not Nova's qcow2 overlay on a
raw base of the flavor's size stops the case, and the conductor arm's host
reads the same Glance as the other arms under its own host name.
"""

import hashlib
import json
import subprocess
import types
import urllib.error
import urllib.request

import pytest

from benchmarks import fake_glance
from benchmarks import fleet_env
from benchmarks import harness
from benchmarks import nova_peer
from imagepipe.conf import loader

MiB = 1024 ** 2


def _get(url):
    with urllib.request.urlopen(url) as resp:
        return resp.status, dict(resp.headers), resp.read()


def _qemu_img(*args):
    subprocess.run(['qemu-img', *args], check=True, capture_output=True)


@pytest.fixture
def image(tmp_path):
    """A real qcow2 image file with some data in it."""
    raw = tmp_path / 'src.raw'
    raw.write_bytes(b'imagepipe' * 100000)
    path = tmp_path / 'disk.qcow2'
    _qemu_img('convert', '-f', 'raw', '-O', 'qcow2', str(raw), str(path))
    return path


def test_fake_glance_serves_what_glanceclient_reads(image):
    data = image.read_bytes()
    with fake_glance.FakeGlance() as glance:
        record = glance.add(str(image), 'qcow2', 900000)
        ident = record['id']
        status, _, body = _get(f'{glance.url}/v2/images/{ident}')
        meta = json.loads(body)
        assert status == 200
        assert {k: meta[k] for k in (
            'id', 'status', 'disk_format', 'container_format', 'size',
            'virtual_size', 'checksum', 'os_hash_algo', 'os_hash_value')} == {
            'id': fake_glance.image_id(str(image)), 'status': 'active',
            'disk_format': 'qcow2', 'container_format': 'bare',
            'size': len(data), 'virtual_size': 900000,
            'checksum': hashlib.md5(data).hexdigest(),
            'os_hash_algo': 'sha512',
            'os_hash_value': hashlib.sha512(data).hexdigest()}
        _, _, body = _get(f'{glance.url}/v2/schemas/image')
        schema = json.loads(body)
        assert schema['name'] == 'image'
        assert set(meta) <= set(schema['properties'])
        assert glance.downloads[ident] == 0
        status, headers, body = _get(f'{glance.url}/v2/images/{ident}/file')
        assert (status, body) == (200, data)
        assert headers['Content-Length'] == str(len(data))
        assert headers['Content-MD5'] == meta['checksum']
        assert glance.downloads[ident] == 1
        with pytest.raises(urllib.error.HTTPError) as missing:
            _get(f'{glance.url}/v2/images/nope/file')
        assert missing.value.code == 404


@pytest.fixture
def made(tmp_path):
    """A raw base of 64 MiB and a 1 GiB qcow2 overlay on it, as Nova's
    Qcow2 backend makes them."""
    base = tmp_path / '_base' / 'abc'
    base.parent.mkdir()
    _qemu_img('create', '-f', 'raw', str(base), '64M')
    disk = tmp_path / 'vm' / 'disk'
    disk.parent.mkdir()
    _qemu_img('create', '-f', 'qcow2', '-b', str(base), '-F', 'raw',
              str(disk), '1G')
    return str(disk), str(base)


def test_check_disk_accepts_the_overlay_on_the_raw_base(made):
    disk, base = made
    nova_peer.check_disk('Nova', disk, base, 1, 64 * MiB)


@pytest.mark.parametrize('root_gb,image_size,problem', [
    (2, 64 * MiB, 'disk virtual-size 1073741824, not 2147483648'),
    (1, 32 * MiB, 'base raw of 67108864 bytes, not raw of 33554432'),
])
def test_check_disk_refuses_other_sizes(made, root_gb, image_size, problem):
    disk, base = made
    with pytest.raises(harness.Failed) as failed:
        nova_peer.check_disk('Nova', disk, base, root_gb, image_size)
    assert str(failed.value) == (f'Nova did not make the disk it should '
                                 f'({disk}): {problem}')


def test_check_disk_refuses_a_flat_copy_and_a_qcow2_base(made, tmp_path):
    disk, base = made
    flat = tmp_path / 'flat'
    _qemu_img('create', '-f', 'raw', str(flat), '1G')
    with pytest.raises(harness.Failed) as failed:
        nova_peer.check_disk('Nova', str(flat), base, 1, 64 * MiB)
    assert "disk format 'raw', not 'qcow2'" in str(failed.value)
    assert 'full-backing-filename None' in str(failed.value)
    qcow2_base = tmp_path / 'qbase'
    _qemu_img('create', '-f', 'qcow2', str(qcow2_base), '64M')
    with pytest.raises(harness.Failed) as failed:
        nova_peer.check_disk('Nova', disk, str(qcow2_base), 1, 64 * MiB)
    assert 'base qcow2 of 67108864 bytes, not raw' in str(failed.value)


def test_conductor_host_conf_keeps_each_setting_in_its_group(tmp_path):
    st = harness.State(types.SimpleNamespace(workdir=str(tmp_path)), 'h')
    fleet_env.write_conf(st.conf, 'peer', 'redis://127.0.0.1:7',
                         'postgresql+psycopg2://u@127.0.0.1:8/runs',
                         more='[glance]\napi_servers = http://127.0.0.1:9\n')
    rconf = loader.load([st.conf], release='gazpacho')
    assert {key: rconf.value(key) for key in (
        'state_path', 'host', 'jobboard_connection',
        'glance_api_servers')} == {
        'state_path': st.state_path, 'host': 'peer',
        'jobboard_connection': 'redis://127.0.0.1:7',
        'glance_api_servers': ['http://127.0.0.1:9']}
    assert (rconf.conf.imagepipe.connection
            == 'postgresql+psycopg2://u@127.0.0.1:8/runs')
