import json
import os
import stat

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import generate
from imagepipe.tasks import locks
from tests import images

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))


def ephemeral_args(target, reuse=False, mkfs='mkfs.ext3', lock=None):
    return {'target': target, 'size_gb': 1, 'fs_label': 'ephemeral0',
            'mkfs': mkfs, 'lock': lock, 'reuse': reuse}


def swap_args(target, reuse=False, lock=None):
    return {'target': target, 'size_mb': 16, 'lock': lock, 'reuse': reuse}


def superblock(path):
    lines = images.sh('dumpe2fs', '-h', path).splitlines()
    return dict(line.split(':', 1) for line in lines if ':' in line)


def swap_signature(path):
    with open(path, 'rb') as f:
        f.seek(4096 - 10)
        return f.read(10)


@pytest.mark.parametrize('mkfs', ['mkfs.ext3', ['mkfs', '-t', 'ext3']])
def test_ephemeral_is_a_labelled_ext3_disk(tmp_path, mkfs):
    target = str(tmp_path / 'ephemeral_1_default')

    result = generate.CreateEphemeral('eph').execute(
        **ephemeral_args(target, mkfs=mkfs))

    assert result == {'path': target, 'created': True, 'size': 1024 * MiB}
    assert images.info(target)['format'] == 'raw'
    sb = superblock(target)
    assert sb['Filesystem volume name'].strip() == 'ephemeral0'
    assert 'has_journal' in sb['Filesystem features']
    assert 'extent' not in sb['Filesystem features']
    assert images.allocated(target) < 64 * MiB
    assert not os.path.exists(target + '.tmp')
    assert json.loads(json.dumps(result)) == result


def test_swap_is_a_swap_signature(tmp_path):
    target = str(tmp_path / 'swap_16')

    result = generate.CreateSwap('swap').execute(**swap_args(target))

    assert result == {'path': target, 'created': True, 'size': 16 * MiB}
    assert swap_signature(target) == b'SWAPSPACE2'


def test_reuse_keeps_a_cached_base(tmp_path):
    target = tmp_path / 'swap_16'
    target.write_bytes(b'cached')
    task = generate.CreateSwap('swap')

    result = task.execute(**swap_args(str(target), reuse=True))
    for outcome in (result, FAILED):
        task.revert(result=outcome, flow_failures={}, **swap_args(
            str(target), reuse=True))

    assert result == {'path': str(target), 'created': False, 'size': 6}
    assert target.read_bytes() == b'cached'


def test_execute_again_then_revert_an_instance_disk(tmp_path):
    lock = {'name': 'eph', 'path': str(tmp_path), 'last': False}
    target = str(tmp_path / 'disk.local')
    open(target + '.tmp', 'w').close()
    task = generate.CreateEphemeral('eph')

    task.execute(**ephemeral_args(target, lock=lock))
    result = task.execute(**ephemeral_args(target, lock=lock))
    assert result['created'] and locks.is_held('eph')

    for outcome in (result, FAILED):
        task.revert(result=outcome, flow_failures={}, **ephemeral_args(
            target, lock=lock))
    assert not os.path.exists(target)
    assert not locks.is_held('eph')


def test_plan_shows_create_then_format():
    shown = generate.CreateEphemeral('eph', inject=ephemeral_args(
        '/b/ephemeral_1_default', reuse=True)).describe()
    swap = generate.CreateSwap('swap', inject=swap_args(
        '/i/disk.swap')).describe()

    assert shown['command'] == [
        ['qemu-img', 'create', '-f', 'raw', '/b/ephemeral_1_default.tmp',
         '1G'],
        ['mkfs.ext3', '-F', '-L', 'ephemeral0', '/b/ephemeral_1_default.tmp']]
    assert swap['command'][1] == ['mkswap', '/i/disk.swap.tmp']
    assert swap['creates'] == ['/i/disk.swap']


def test_novas_mode_whatever_the_umask(tmp_path):
    target = str(tmp_path / 'disk.swap')
    old = os.umask(0o077)
    try:
        generate.CreateSwap('swap').execute(**swap_args(target))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


@pytest.mark.parametrize('planted, reuse, doing', [
    ('swap_16.tmp', False, 'write through it'),
    ('swap_16', True, 'reuse it'),
])
def test_a_planted_link_is_refused(tmp_path, planted, reuse, doing):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(victim, tmp_path / planted)
    target = str(tmp_path / 'swap_16')

    with pytest.raises(exception.ImagepipeError,
                       match=f'^{tmp_path}/{planted} is a symbolic link: '
                             f'refusing to {doing}$'):
        generate.CreateSwap('swap').execute(**swap_args(target, reuse))

    assert victim.read_bytes() == b'keep'
