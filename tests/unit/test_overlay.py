import json
import os
import stat
import subprocess

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks import overlay
from tests import images

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))


def args(base, disk, base_format=None, cluster_size=None, size=None,
         lock=None):
    return {'base': base, 'disk': disk, 'base_format': base_format,
            'cluster_size': cluster_size, 'size': size, 'lock': lock}


def create(*a, **kw):
    return overlay.CreateOverlay('overlay').execute(**args(*a, **kw))


@pytest.fixture(scope='module')
def qcow2_base(tmp_path_factory, raw_image):
    """A qcow2 base with 128 KiB clusters, to see them inherited."""
    path = str(tmp_path_factory.mktemp('base') / 'base.qcow2')
    images.sh('qemu-img', 'convert', '-O', 'qcow2', '-o',
              'cluster_size=131072', raw_image, path)
    return path


def test_overlay_on_a_probed_raw_base(raw_image, tmp_path):
    disk = str(tmp_path / 'disk')

    result = create(raw_image, disk, cluster_size='inherit')

    info = images.info(disk)
    assert result == {'path': disk, 'backing_file': raw_image,
                      'backing_format': 'raw', 'cluster_size': None,
                      'virtual_size': 64 * MiB}
    assert info['format'] == 'qcow2'
    assert info['backing-filename'] == raw_image
    assert info['backing-filename-format'] == 'raw'
    assert info['cluster-size'] == 65536
    assert info['virtual-size'] == 64 * MiB
    images.sh('qemu-img', 'compare', raw_image, disk)
    assert json.loads(json.dumps(result)) == result


@pytest.mark.parametrize('choice, expected', [
    ('inherit', 131072), ('2M', 2 * MiB), (None, 65536)])
def test_cluster_size(qcow2_base, tmp_path, choice, expected):
    disk = str(tmp_path / 'disk')

    create(qcow2_base, disk, base_format='qcow2', cluster_size=choice)

    info = images.info(disk)
    assert info['cluster-size'] == expected
    assert info['backing-filename-format'] == 'qcow2'


def test_size_and_relative_base(raw_image, tmp_path, monkeypatch):
    monkeypatch.chdir(os.path.dirname(raw_image))
    disk = str(tmp_path / 'disk')

    result = create(os.path.basename(raw_image), disk, size=96 * MiB)

    assert result['backing_file'] == raw_image
    assert images.info(disk)['virtual-size'] == 96 * MiB
    assert images.info(disk)['full-backing-filename'] == raw_image


def test_execute_again_and_revert(raw_image, tmp_path):
    lock = {'name': 'ov', 'path': str(tmp_path), 'last': False}
    disk = str(tmp_path / 'disk')
    open(disk + '.tmp', 'w').close()

    create(raw_image, disk, lock=lock)
    result = create(raw_image, disk, lock=lock)
    assert result['virtual_size'] == 64 * MiB
    assert not os.path.exists(disk + '.tmp')

    task = overlay.CreateOverlay('overlay')
    for outcome in (result, FAILED):
        task.revert(result=outcome, flow_failures={}, **args(
            raw_image, disk, lock=lock))
    assert not os.path.exists(disk)
    assert os.path.exists(raw_image)
    assert not locks.is_held('ov')


def test_plan_shows_backing_format_and_placeholders():
    shown = overlay.CreateOverlay('overlay', inject=args(
        '/b/abc', '/i/disk', cluster_size='inherit')).describe()

    assert shown['command'] == [
        'qemu-img', 'create', '-f', 'qcow2', '-o',
        'backing_file=/b/abc,backing_fmt=<probed format>,'
        'cluster_size=<cluster size of the base>', '/i/disk.tmp']
    assert shown['creates'] == ['/i/disk']
    assert any('made absolute' in note for note in shown['notes'])


def test_a_finished_overlay_shows_what_it_ran(raw_image, tmp_path):
    """A raw base has no cluster size: 'inherit' passed none."""
    disk = str(tmp_path / 'disk')
    task = overlay.CreateOverlay('overlay', inject=args(
        raw_image, disk, cluster_size='inherit'))
    result = create(raw_image, disk, cluster_size='inherit')
    planned = ' '.join(task.describe()['command'])
    ran = ' '.join(task.describe({'overlay': result})['command'])
    assert 'cluster_size=<cluster size of the base>' in planned
    assert 'cluster_size' not in ran
    assert f'backing_file={raw_image},backing_fmt=raw ' in ran


def test_a_link_at_the_temporary_name_is_refused(raw_image, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    disk = str(tmp_path / 'disk')
    os.symlink(victim, disk + '.tmp')

    with pytest.raises(exception.ImagepipeError,
                       match=f'^{disk}.tmp is a symbolic link: refusing to '
                             'write through it$'):
        create(raw_image, disk)
    overlay.CreateOverlay('overlay').revert(result=FAILED, **args(
        raw_image, disk))

    assert victim.read_bytes() == b'keep' and os.path.islink(disk + '.tmp')


def test_the_overlay_is_never_more_readable_than_its_base(tmp_path):
    base = tmp_path / 'base'
    base.write_bytes(b'\0' * MiB)
    os.chmod(base, 0o640)
    old = os.umask(0)
    try:
        create(str(base), str(tmp_path / 'disk'), base_format='raw')
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'disk').st_mode) == 0o640



def test_a_revert_on_a_read_only_filesystem_says_what_is_left(raw_image,
                                                              small_tmpfs):
    disk = str(small_tmpfs / 'vm1' / 'disk')
    create(raw_image, disk)
    subprocess.run(['mount', '-o', 'remount,ro', str(small_tmpfs)], check=True)

    with pytest.raises(exception.ImagepipeError) as raised:
        overlay.CreateOverlay('overlay').revert(result=FAILED, **args(
            raw_image, disk))

    assert str(raised.value) == (f'could not remove {disk} (Read-only file '
                                 'system): remove it by hand')
