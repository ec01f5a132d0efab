import hashlib
import json
import os
import shutil
import subprocess

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks import resize
from tests import images

MiB = images.MiB
GROWN = 96 * MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))


def copy_of(src, tmp_path, name='disk'):
    dest = str(tmp_path / name)
    shutil.copyfile(src, dest)
    return dest


def make_partitioned(path, size_mb=32):
    """An MBR disk whose only partition (at 1 MiB) holds an ext4 filesystem."""
    with open(path, 'wb') as f:
        f.truncate(size_mb * MiB)
    subprocess.run(['sfdisk', '-q', path], input='start=2048, type=83\n',
                   check=True, capture_output=True, text=True)
    part = images.make_ext4(path + '.p1', size_mb - 1)
    images.sh('dd', f'if={part}', f'of={path}', 'bs=1M', 'seek=1',
              'conv=notrunc,sparse')
    return path


def digest(path, length):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read(length)).hexdigest()


def resize_image(path, size, fmt=None, lock=None, origin=None, made=None):
    """``origin``: the virtual size of what the disk was made from (by
    default what it is now, as for a first attempt)."""
    if origin is None:
        origin = images.info(path)['virtual-size']
    task = resize.ResizeImage('resize-root')
    return task.execute(path=path, size=size, format=fmt, lock=lock,
                        origin={'virtual_size': origin}, made=made)


def resize_fs(path, resized, variant, lock=None):
    task = resize.ResizeFilesystem('resize-fs')
    return task.execute(path=path, variant=variant, lock=lock,
                        resize=resized)


@pytest.mark.parametrize('variant', ['blind', 'checked', 'strict', 'device'])
def test_raw_ext4_grows_image_and_filesystem(raw_image, tmp_path, variant):
    disk = copy_of(raw_image, tmp_path)
    blocks = images.fs_block_count(disk)

    resized = resize_image(disk, GROWN)
    grown = resize_fs(disk, resized, variant)

    assert resized == {'resized': True, 'virtual_size_before': 64 * MiB,
                       'virtual_size': GROWN, 'format': 'raw'}
    assert images.info(disk)['virtual-size'] == GROWN
    assert grown['grown'] and grown['resize2fs_status'] == 0
    assert grown['e2fsck_status'] in resize.E2FSCK_OK
    assert images.fs_block_count(disk) == blocks * 96 // 64


def test_qcow2_file_blind_tools_fail_silently(qcow2_image, tmp_path):
    disk = copy_of(qcow2_image, tmp_path)

    resized = resize_image(disk, GROWN)
    grown = resize_fs(disk, resized, 'blind')

    assert resized['resized'] and resized['format'] == 'qcow2'
    assert images.info(disk)['virtual-size'] == GROWN
    assert grown == {'grown': False, 'reason': 'resize2fs exited 1',
                     'e2fsck_status': 8, 'resize2fs_status': 1}
    raw = images.convert(disk, str(tmp_path / 'check.raw'), 'raw')
    assert images.fs_block_count(raw) == images.fs_block_count(
        images.convert(qcow2_image, str(tmp_path / 'orig.raw'), 'raw'))


@pytest.mark.parametrize('variant', ['checked', 'strict'])
def test_partitioned_disk_is_skipped_by_the_e2label_gate(tmp_path, variant):
    disk = make_partitioned(str(tmp_path / 'disk'))
    before = digest(disk, 32 * MiB)

    grown = resize_fs(disk, resize_image(disk, GROWN), variant)

    assert not grown['grown'] and 'e2label failed' in grown['reason']
    assert grown['e2fsck_status'] is None
    assert grown['resize2fs_status'] is None
    assert digest(disk, 32 * MiB) == before


def test_strict_codes_skip_resize2fs_after_a_failed_e2fsck(tmp_path):
    disk = str(tmp_path / 'blank')
    with open(disk, 'wb') as f:
        f.truncate(8 * MiB)

    strict = resize_fs(disk, {'resized': True}, 'device')
    blind = resize_fs(disk, {'resized': True}, 'blind')

    assert strict == {'grown': False,
                      'reason': 'e2fsck -fp exited 8: resize2fs skipped',
                      'e2fsck_status': 8, 'resize2fs_status': None}
    assert blind['e2fsck_status'] == 8 and blind['resize2fs_status'] == 1


def test_never_shrinks_and_then_leaves_the_filesystem(raw_image, tmp_path):
    disk = copy_of(raw_image, tmp_path)

    resized = resize_image(disk, 32 * MiB, fmt='raw')
    grown = resize_fs(disk, resized, 'blind')

    assert resized == {'resized': False, 'virtual_size_before': 64 * MiB,
                       'virtual_size': 64 * MiB, 'format': 'raw'}
    assert os.path.getsize(disk) == 64 * MiB
    assert grown['grown'] is False and grown['e2fsck_status'] is None


def test_execute_again_is_harmless(raw_image, tmp_path):
    disk = copy_of(raw_image, tmp_path)
    first = resize_image(disk, GROWN)
    resize_fs(disk, first, 'strict')
    blocks = images.fs_block_count(disk)

    again = resize_image(disk, GROWN, origin=64 * MiB)
    fs_again = resize_fs(disk, again, 'strict')

    assert again == first
    assert fs_again['grown'] and images.fs_block_count(disk) == blocks


def test_crash_after_qemu_img_resize_still_grows_the_filesystem(
        raw_image, tmp_path):
    """Killed after qemu-img resize, before its result was saved: the re-run
    finds the disk at full size, and must still say it grew it."""
    disk = copy_of(raw_image, tmp_path)
    small = images.fs_block_count(disk)
    images.sh('qemu-img', 'resize', '-f', 'raw', disk, str(GROWN))

    again = resize_image(disk, GROWN, origin=64 * MiB)
    grown = resize_fs(disk, again, 'strict')

    assert again['resized'] is True
    assert grown['grown'] is True
    assert images.fs_block_count(disk) == small * 96 // 64


def staged_copy(src, tmp_path):
    """A cache entry copied to its temporary name, as CopyImage stages it."""
    dest = str(tmp_path / 'abc_1')
    shutil.copyfile(src, dest + '.tmp')
    return {'path': dest, 'staged': dest + '.tmp', 'copied': True,
            'size': os.path.getsize(src)}


def test_staged_entry_is_grown_then_published(raw_image, tmp_path):
    made = staged_copy(raw_image, tmp_path)
    small = images.fs_block_count(made['staged'])

    resized = resize_image(made['staged'], GROWN, made=made)
    grown = resize.ResizeFilesystem('f').execute(
        path=made['staged'], variant='blind', lock=None, resize=resized,
        made=made)

    assert resized['resized'] and grown['grown']
    assert not os.path.exists(made['staged'])
    assert images.fs_block_count(made['path']) == small * 96 // 64
    # a re-run after the publish, or another run reusing the entry: no-op
    for done in (made, {'path': made['path'], 'copied': False, 'size': 1}):
        assert resize_image(made['path'], GROWN, made=done)['resized'] is \
            False
        again = resize.ResizeFilesystem('f').execute(
            path=made['staged'], variant='blind', lock=None,
            resize={'resized': True}, made=done)
        assert again['grown'] is False and again['e2fsck_status'] is None


def test_results_are_json(raw_image, tmp_path):
    disk = copy_of(raw_image, tmp_path)
    resized = resize_image(disk, GROWN)
    for result in (resized, resize_fs(disk, resized, 'strict')):
        assert json.loads(json.dumps(result)) == result


def test_revert_releases_the_lock_and_tolerates_failure(tmp_path):
    lock = {'name': 'abc', 'path': str(tmp_path), 'last': False}
    disk = str(tmp_path / 'disk')
    images.make_ext4(disk, 16)

    resized = resize_image(disk, 32 * MiB, lock=lock)
    resize_fs(disk, resized, 'strict', lock=lock)
    assert locks.is_held('abc')

    for task in (resize.ResizeImage('r'), resize.ResizeFilesystem('f')):
        for _ in range(2):
            task.revert(path=disk, lock=lock, result=FAILED,
                        flow_failures={'r': FAILED})
    assert not locks.is_held('abc')
    assert os.path.exists(disk)


def test_unknown_variant_is_a_config_error():
    with pytest.raises(exception.ConfigError, match='blind, checked'):
        resize_fs('/nonexistent', {'resized': True}, 'bogus')


def test_plan_shows_the_commands_with_placeholders():
    image = resize.ResizeImage('resize-root', inject={
        'path': '/i/disk', 'size': 100, 'format': None, 'lock': None},
        wire={'origin': 'inspect'})
    fs = resize.ResizeFilesystem(
        'resize-fs', inject={'path': '/i/disk', 'variant': 'strict',
                             'lock': None},
        wire={'resize': 'resize-root'})

    plan = image.describe()
    fs_plan = fs.describe()

    assert plan['command'] == ['qemu-img', 'resize', '-f', '<probed format>',
                               '/i/disk', '100']
    assert fs_plan['command'] == [['e2label', '/i/disk'],
                                  ['e2fsck', '-fp', '/i/disk'],
                                  ['resize2fs', '/i/disk']]
    assert 'only when <resized of resize-root> is true' in fs_plan['notes']
