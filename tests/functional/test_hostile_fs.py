"""Hostile file-system layouts under instances_path, through the real
command line: links planted where imagepipe writes or reads its cache, linked
or foreign directories, the modes of what it makes, and a disk.info it
cannot read.

A refusal is exit status 1, one line on stderr naming the planted path, and
the file a link points at keeps its bytes, size and mtime.
"""

import json
import os
import stat
import subprocess
import sys

import pytest

from tests import httpserver
from tests import images

pytestmark = pytest.mark.slow

PATH = os.environ.get('PATH', '') + ':/usr/sbin:/sbin'  # e2fsck, resize2fs
MiB = images.MiB
RAW_BACKEND = '[libvirt]\nimages_type = raw\n'


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    """A 32 MiB ext4 disk as qcow2, readable by anyone."""
    d = str(tmp_path_factory.mktemp('hostile-fs-image'))
    raw = images.make_ext4(os.path.join(d, 'disk.raw'), 32)
    return images.convert(raw, os.path.join(d, 'disk.qcow2'), 'qcow2')


class Result:
    def __init__(self, proc):
        self.rc, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    def __repr__(self):
        return f'rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}'


class Cli:
    """``imagepipe`` with a config of its own under ``root``."""

    def __init__(self, root, release='juno', extra=''):
        self.root = str(root)
        self.release = release
        self.instances = os.path.join(self.root, 'instances')
        self.conf = os.path.join(self.root, 'imagepipe.conf')
        os.makedirs(self.root, exist_ok=True)
        with open(self.conf, 'w') as f:
            f.write(f'[DEFAULT]\nstate_path = {self.root}/state\n'
                    f'instances_path = {self.instances}\n'
                    f'[imagepipe]\nconnection = sqlite:///{self.root}/db\n'
                    + extra)

    def __call__(self, *args, umask=None):
        proc = subprocess.run(
            [sys.executable, '-m', 'imagepipe.cmd.main', '--config-file',
             self.conf, '--release', self.release, *args],
            capture_output=True, text=True, timeout=60,
            umask=-1 if umask is None else umask,
            env={**os.environ, 'PATH': PATH})
        return Result(proc)

    def run(self, image, instance='vm1', *more, umask=None):
        return self('run', '--image', image, '--instance', instance,
                    '--root-gb', '1', *more, umask=umask)

    def base(self, image, instance='vm1'):
        """The cached base of ``image``, as the plan names it."""
        plan = json.loads(self('plan', '--image', image, '--instance',
                               instance, '--format', 'json').out)
        return next(s for s in plan if s['name'] == 'root-publish'
                    )['creates'][0]

    def disk(self, name='disk', instance='vm1'):
        return os.path.join(self.instances, instance, name)


class Victim:
    """A file outside instances_path that a planted link points at."""

    def __init__(self, path, data=b'not yours\n' * 100):
        self.path = str(path)
        with open(self.path, 'wb') as f:
            f.write(data)
        self.data, self.stat = data, os.stat(self.path)

    def assert_untouched(self):
        st = os.stat(self.path)
        assert (st.st_size, st.st_mtime_ns) == (self.stat.st_size,
                                                self.stat.st_mtime_ns)
        with open(self.path, 'rb') as f:
            assert f.read() == self.data


def assert_refused(result, path, what='is a symbolic link: refusing to'):
    """Exit 1 and one line on stderr saying ``path`` ``what``."""
    assert result.rc == 1, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result
    assert f'{path} {what}' in lines[0], result


def plant(link, target):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(target, link)


class TestPlantedFileLinks:
    """A link where a file of the run goes: refused, never written
    through, never removed."""

    @pytest.mark.parametrize('suffix', ['.part', '.converted'])
    def test_download_and_convert_outputs(self, tmp_path, image, suffix):
        cli, victim = Cli(tmp_path / 'env'), Victim(tmp_path / 'victim')
        link = cli.base(image) + suffix
        plant(link, victim.path)

        assert_refused(cli.run(image), link)
        victim.assert_untouched()
        assert os.path.islink(link)
        assert not os.path.exists(cli.disk())

    @pytest.mark.parametrize('extra', ['', RAW_BACKEND],
                             ids=['overlay', 'copy'])
    def test_instance_disk_tmp(self, tmp_path, image, extra):
        cli = Cli(tmp_path / 'env', extra=extra)
        victim = Victim(tmp_path / 'victim')
        link = cli.disk('disk.tmp')
        plant(link, victim.path)

        assert_refused(cli.run(image), link)
        victim.assert_untouched()
        assert sorted(os.listdir(os.path.dirname(link))) == ['disk.tmp']

    def test_disk_info_tmp(self, tmp_path, image):
        cli, victim = Cli(tmp_path / 'env'), Victim(tmp_path / 'victim')
        link = cli.disk('disk.info.tmp')
        plant(link, victim.path)

        assert_refused(cli.run(image), link)
        victim.assert_untouched()

    def test_essex_resized_base(self, tmp_path, image):
        cli = Cli(tmp_path / 'env', release='essex')
        victim = Victim(tmp_path / 'victim', bytes(MiB))
        link = cli.base(image) + '_1'
        plant(link, victim.path)

        assert_refused(cli.run(image), link)
        victim.assert_untouched()

    def test_the_cached_base_itself(self, tmp_path, image):
        cli = Cli(tmp_path / 'env')
        victim = Victim(tmp_path / 'victim', open(image, 'rb').read())
        link = cli.base(image)
        plant(link, victim.path)

        assert_refused(cli.run(image), link,
                       'is a symbolic link: refusing to use it as the '
                       'cached image')
        victim.assert_untouched()

    def test_lock_file(self, tmp_path, image):
        cli, victim = Cli(tmp_path / 'env'), Victim(tmp_path / 'victim')
        link = os.path.join(cli.instances, 'locks',
                            'nova-' + os.path.basename(cli.base(image)))
        plant(link, victim.path)

        assert_refused(cli.run(image), link)
        victim.assert_untouched()

    def test_ephemeral_base_tmp(self, tmp_path, image):
        cli, victim = Cli(tmp_path / 'env'), Victim(tmp_path / 'victim')
        link = os.path.join(os.path.dirname(cli.base(image)),
                            'ephemeral_1_default.tmp')
        plant(link, victim.path)

        assert_refused(cli.run(image, 'vm1', '--ephemeral-gb', '1'), link)
        victim.assert_untouched()

    def test_a_fifo_at_the_part_is_refused_not_waited_on(self, tmp_path,
                                                         image):
        cli = Cli(tmp_path / 'env')
        part = cli.base(image) + '.part'
        os.makedirs(os.path.dirname(part))
        os.mkfifo(part)

        assert_refused(cli.run(image), part,
                       'is a special file: refusing to open it')
        assert stat.S_ISFIFO(os.lstat(part).st_mode)


class TestPlantedDirectories:
    """A linked or foreign directory below instances_path: nothing is
    written in it; instances_path itself may be a link."""

    @pytest.mark.parametrize('where', ['vm1', '_base', 'locks'])
    def test_linked_directory(self, tmp_path, image, where):
        cli = Cli(tmp_path / 'env')
        outside = tmp_path / 'outside'
        outside.mkdir()
        link = os.path.join(cli.instances, where)
        plant(link, str(outside))

        assert_refused(cli.run(image), link,
                       'is a symbolic link: refusing to write in it')
        assert os.listdir(outside) == []

    def test_directory_of_another_user(self, tmp_path, image):
        cli = Cli(tmp_path / 'env')
        foreign = cli.disk('')[:-1]
        os.makedirs(foreign)
        os.chown(foreign, 4242, 4242)

        assert_refused(cli.run(image), foreign, 'is owned by uid 4242')
        assert os.listdir(foreign) == []

    def test_instances_path_may_be_a_link(self, tmp_path, image):
        real = tmp_path / 'real-instances'
        real.mkdir()
        cli = Cli(tmp_path / 'env')
        os.symlink(real, cli.instances)

        result = cli.run(image)

        assert result.rc == 0, result
        assert os.path.isfile(real / 'vm1' / 'disk')


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class TestModes:
    """Nova's 0644, never wider than a local source's mode."""

    def test_a_0640_source_makes_0640_files(self, tmp_path, image):
        source = str(tmp_path / 'private.qcow2')
        with open(image, 'rb') as src, open(source, 'wb') as dst:
            dst.write(src.read())
        os.chmod(source, 0o640)
        cli = Cli(tmp_path / 'env', release='essex')

        result = cli.run(source)

        assert result.rc == 0, result
        base = cli.base(source)
        made = [base, base + '_1', cli.disk()]
        assert {p: mode(p) for p in made} == {p: 0o640 for p in made}

    @pytest.mark.parametrize('extra', ['', RAW_BACKEND],
                             ids=['overlay', 'copy'])
    def test_a_0600_source_under_umask_0(self, tmp_path, image, extra):
        source = str(tmp_path / 'private.qcow2')
        with open(image, 'rb') as src, open(source, 'wb') as dst:
            dst.write(src.read())
        os.chmod(source, 0o600)
        cli = Cli(tmp_path / 'env', extra=extra)

        result = cli.run(source, umask=0)

        assert result.rc == 0, result
        made = [cli.base(source), cli.disk()]
        assert {p: mode(p) for p in made} == {p: 0o600 for p in made}
        assert mode(cli.disk('disk.info')) == 0o644

    def test_http_source_is_0644_whatever_the_umask(self, tmp_path, image):
        cli = Cli(tmp_path / 'env')
        with httpserver.Server(os.path.dirname(image)) as server:
            url = server.url(os.path.basename(image))
            result = cli.run(url, 'vm1', '--ephemeral-gb', '1',
                             '--swap-mb', '8', umask=0o077)

        assert result.rc == 0, result
        made = [cli.base(url), cli.disk(), cli.disk('disk.local'),
                cli.disk('disk.swap'), cli.disk('disk.info')]
        assert {p: mode(p) for p in made} == {p: 0o644 for p in made}


class TestUnreadableDiskInfo:
    """A disk.info Nova did not write fails its step; the revert removes
    the disk and leaves that disk.info alone, so a retry can succeed."""

    @pytest.mark.parametrize('text', [b'not json at all\n', b'[1, 2]',
                                      b'\xff\xfe'])
    def test_fails_its_step_and_reverts(self, tmp_path, image, text):
        cli = Cli(tmp_path / 'env', extra=RAW_BACKEND)
        info = cli.disk('disk.info')
        os.makedirs(os.path.dirname(info))
        with open(info, 'wb') as f:
            f.write(text)

        result = cli.run(image)

        assert_refused(result, info, 'is not a disk.info Nova wrote: ')
        assert os.listdir(os.path.dirname(info)) == ['disk.info']
        with open(info, 'rb') as f:
            assert f.read() == text

        os.unlink(info)
        again = cli.run(image)
        assert again.rc == 0, again
        assert os.path.isfile(cli.disk())
