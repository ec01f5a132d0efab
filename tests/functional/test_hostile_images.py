"""Hostile images and half-done disks, through the real command line.

Each class holds the reproducer of one class of wrong results that exited 0
before, and a variant: an image cut inside its last qcow2 cluster, a crash
right after ``qemu-img resize``, an instance disk gone when a run resumes,
images of less than a sector or of zeros only, and a compressed qcow2 far
larger than the flavor. A refused image must leave one error line, exit
status 1 and nothing in the image cache.
"""

import hashlib
import os
import shutil

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import PATH
from tests.functional.runner_env import Env
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import qemu_img_wrapper

pytestmark = pytest.mark.slow

MiB = images.MiB
GiB = 1024 ** 3
RELEASES = ['essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno',
            'gazpacho']


def env_for(root, release, extra=''):
    env = Env(root, release=release)
    if extra:
        with open(env.conf, 'a') as f:
            f.write(f'[DEFAULT]\n{extra}')
    return env


def cache_files(env):
    base_dir = os.path.join(env.instances, '_base')
    return sorted(os.listdir(base_dir)) if os.path.isdir(base_dir) else []


def base_of(env, image):
    return os.path.join(env.instances, '_base',
                        hashlib.sha1(image.encode()).hexdigest())


def assert_refused(result, env, reason, step='root-inspect'):
    """Exit 1, one line naming the step and ``reason``, an empty cache."""
    assert result.rc == 1, result
    line = result.error_line()
    assert line.startswith(f'imagepipe: error: run {first_run_id(result)} '
                           f'failed and was reverted at step {step}: '
                           'image '), line
    assert reason in line, line
    assert cache_files(env) == []
    assert not os.path.exists(os.path.join(env.instances, 'vm1', 'disk'))


def fs_bytes(path):
    """Size of the ext filesystem at the start of ``path`` (dumpe2fs -h)."""
    fields = dict(line.split(':', 1) for line in images.sh(
        'dumpe2fs', '-h', path).splitlines() if ':' in line)
    return int(fields['Block count']) * int(fields['Block size'])


@pytest.fixture(scope='module')
def ext4(tmp_path_factory):
    """(raw, qcow2) of a 32 MiB ext4 disk whose last cluster holds data."""
    d = tmp_path_factory.mktemp('hostile-images')
    raw = images.make_ext4(str(d / 'disk.raw'), 32,
                           {'data.bin': os.urandom(4 * MiB)})
    # data in the very last cluster, so that a cut there loses guest bytes
    images.sh('qemu-io', '-f', 'raw', '-c',
              f'write -P 0x5a {32 * MiB - 64 * 1024} 64k', raw)
    return raw, images.convert(raw, str(d / 'disk.qcow2'), 'qcow2')


def cut(src, dest, short_by):
    with open(src, 'rb') as f, open(dest, 'wb') as out:
        out.write(f.read()[:-short_by])
    return str(dest)


class TestTruncatedQcow2:
    """A qcow2 cut inside its last cluster passed every check and converted
    into a disk ending in zeros."""

    @pytest.mark.parametrize('release', ['grizzly', 'gazpacho'])
    def test_server_declaring_the_short_length(self, tmp_path, ext4,
                                               release):
        served = tmp_path / 'served'
        served.mkdir()
        cut(ext4[1], served / 'cut.qcow2', 1000)
        env = env_for(tmp_path / 'env', release)
        with httpserver.Server(served) as server:
            r = env.run(server.url('cut.qcow2'))
            # the server declared the length it sent: the fetch is content
            assert server.gets()[0]['sent'] == os.path.getsize(ext4[1]) - 1000
        assert_refused(r, env, 'is unacceptable: truncated: the data '
                               'cluster of guest byte')

    def test_compressed_cut_local_file(self, tmp_path, ext4):
        packed = images.convert(ext4[0], str(tmp_path / 'disk.zqcow2'),
                                'qcow2', compress=True)
        image = cut(packed, tmp_path / 'cut.zqcow2', 4096)
        env = env_for(tmp_path / 'env', 'essex')
        assert_refused(env.run(image), env,
                       'is unacceptable: truncated: the compressed cluster')


def resize_then_die(tmp_path):
    """A PATH whose qemu-img kills imagepipe right after a real resize."""
    return qemu_img_wrapper(
        str(tmp_path / 'bin'),
        'resize) "$REAL" "$@" && kill -KILL $PPID; sleep 5; exit 1;;')


class TestKilledAfterResize:
    """A kill right after qemu-img resize left the filesystem small: the
    re-run found the disk grown and skipped resize2fs."""

    @pytest.mark.parametrize('release', ['grizzly', 'juno'])
    def test_raw_disk_filesystem_grown_on_resume(self, tmp_path, ext4,
                                                 release):
        env = env_for(tmp_path / 'env', release, 'use_cow_images = false\n')
        env.path = resize_then_die(tmp_path)
        r = env.run(ext4[1])
        env.path = PATH
        assert killed(r), r
        run_id = first_run_id(r)
        assert env.steps(run_id)['root-resize'] == 'RUNNING'
        disk = os.path.join(env.instances, 'vm1', 'disk')
        assert images.info(disk)['virtual-size'] == GiB  # resized already

        r = env.cli('resume', run_id)
        assert r.rc == 0, r
        assert env.result(run_id, 'root-resize')['resized'] is True
        assert fs_bytes(disk) == GiB

    def test_essex_shared_resized_base_never_reused_half_grown(
            self, tmp_path, ext4):
        """The first run dies after growing _base/<hex>_1; a second instance
        comes before it resumes."""
        env = env_for(tmp_path / 'env', 'essex')
        env.path = resize_then_die(tmp_path)
        r = env.run(ext4[1])
        env.path = PATH
        assert killed(r), r
        run_id = first_run_id(r)

        other = env.run(ext4[1], 'vm2')
        assert other.rc == 0, other
        resized_base = base_of(env, ext4[1]) + '_1'
        assert fs_bytes(resized_base) == GiB

        r = env.cli('resume', run_id)
        assert r.rc == 0, r
        assert fs_bytes(resized_base) == GiB
        for vm in ('vm1', 'vm2'):
            disk = os.path.join(env.instances, vm, 'disk')
            assert images.info(disk)['backing-filename'] == resized_base
        assert [f for f in cache_files(env) if f.endswith('.tmp')] == []


class TestDiskGoneBeforeResume:
    """A resumed run said SUCCESS although its disk had been removed."""

    def test_disk_deleted_after_the_filesystem_step(self, tmp_path, ext4):
        env = env_for(tmp_path / 'env', 'grizzly', 'use_cow_images = false\n')
        r = env.run(ext4[1], kill_after='root-resize-fs')
        assert killed(r), r
        run_id = first_run_id(r)
        disk = os.path.join(env.instances, 'vm1', 'disk')
        os.unlink(disk)

        r = env.cli('resume', run_id)
        assert r.rc == 1, r
        assert r.error_line() == (
            f'imagepipe: error: run {run_id} failed and was reverted at '
            f'step verify: instance disk {disk} is missing')
        assert env.flow_state(run_id) == 'REVERTED'

        again = env.cli('resume', run_id)   # retried as a reverted run
        assert again.rc == 0, again
        assert fs_bytes(disk) == GiB

    def test_overlay_whose_base_was_removed(self, tmp_path, ext4):
        env = env_for(tmp_path / 'env', 'gazpacho')
        r = env.run(ext4[1], kill_after='root-overlay')
        assert killed(r), r
        run_id = first_run_id(r)
        base = base_of(env, ext4[1])
        os.unlink(base)

        r = env.cli('resume', run_id)
        assert r.rc == 1, r
        disk = os.path.join(env.instances, 'vm1', 'disk')
        assert r.error_line() == (
            f'imagepipe: error: run {run_id} failed and was reverted at '
            f'step verify: instance disk {disk} is backed by {base}, which '
            'is missing')
        assert not os.path.exists(disk)


class TestNoImageInside:
    """Empty, 1-byte and 511-byte images and raw zeros made disks of zeros
    with exit status 0 in every release."""

    @pytest.mark.parametrize('release', RELEASES)
    def test_empty_image_in_every_release(self, tmp_path, release):
        image = tmp_path / 'empty.img'
        image.write_bytes(b'')
        env = env_for(tmp_path / 'env', release)
        assert_refused(env.run(str(image)), env,
                       'is unacceptable: too small: 0 bytes, less than one '
                       '512-byte sector')

    @pytest.mark.parametrize('size', [1, 511])
    def test_less_than_a_sector(self, tmp_path, size):
        image = tmp_path / 'short.img'
        image.write_bytes(b'\x7fELF' * (size // 4) + b'x' * (size % 4))
        env = env_for(tmp_path / 'env', 'juno', 'use_cow_images = false\n')
        assert_refused(env.run(str(image)), env,
                       f'too small: {size} bytes, less than one 512-byte '
                       'sector')

    @pytest.mark.parametrize('release', ['folsom', 'gazpacho'])
    def test_zeros_from_a_server(self, tmp_path, release):
        served = tmp_path / 'served'
        served.mkdir()
        (served / 'zeros.img').write_bytes(bytes(3 * MiB + 512))
        env = env_for(tmp_path / 'env', release)
        with httpserver.Server(served) as server:
            r = env.run(server.url('zeros.img'))
        assert_refused(r, env, 'is unacceptable: no content: every byte is '
                               'zero')


@pytest.fixture(scope='module')
def bomb(tmp_path_factory):
    """A compressed qcow2 of a few MiB whose virtual size is 4 GiB."""
    d = tmp_path_factory.mktemp('bomb')
    raw = str(d / 'bomb.raw')
    with open(raw, 'wb') as f:
        f.truncate(4 * GiB)
    images.sh('qemu-io', '-f', 'raw', '-c', 'write -P 0x41 0 256M', raw)
    with open(raw, 'r+b') as f:
        f.seek(3 * GiB)
        f.write(os.urandom(4 * MiB))
    made = images.convert(raw, str(d / 'bomb.qcow2'), 'qcow2', compress=True)
    os.unlink(raw)
    return made


class TestCompressedBomb:
    """gazpacho converted a compressed qcow2 far larger than the flavor and
    kept the result in _base."""

    @pytest.mark.parametrize('extra', ['', 'use_cow_images = false\n'])
    def test_refused_before_conversion(self, tmp_path, bomb, extra):
        assert os.path.getsize(bomb) < 12 * MiB
        assert images.info(bomb)['virtual-size'] == 4 * GiB
        env = env_for(tmp_path / 'env', 'gazpacho', extra)
        assert_refused(env.run(bomb), env,
                       'virtual size 4.0 GiB exceeds root disk 1.0 GiB: use '
                       '--root-gb 4 or more', step='root-fetch')

    def test_from_a_server_refused_in_juno_too(self, tmp_path, bomb):
        served = tmp_path / 'served'
        served.mkdir()
        shutil.copy(bomb, served / 'bomb.qcow2')
        env = env_for(tmp_path / 'env', 'juno')
        with httpserver.Server(served) as server:
            r = env.run(server.url('bomb.qcow2'))
        assert_refused(r, env, "Flavor's disk is too small", 'root-fetch')
