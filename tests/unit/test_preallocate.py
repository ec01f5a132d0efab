import json
import os

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import preallocate
from tests import images

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))


def sparse_file(path, size):
    with open(path, 'wb') as f:
        f.truncate(size)
    return str(path)


def run(path, size, keep=False):
    return preallocate.Preallocate('prealloc').execute(
        path=path, size=size, probe_keep_size=keep)



def test_disk_fully_allocated_size_kept(tmp_path):
    disk = sparse_file(tmp_path / 'disk', 8 * MiB)

    result = run(disk, 8 * MiB)

    assert result == {'preallocated': True, 'reason': '8388608 bytes '
                      'reserved'}
    assert images.allocated(disk) == 8 * MiB
    assert os.path.getsize(disk) == 8 * MiB
    assert not os.path.exists(disk + '.fallocate_test')
    assert run(disk, 8 * MiB) == result
    assert json.loads(json.dumps(result)) == result


def test_failed_probe_disables_preallocation(tmp_path):
    disk = str(tmp_path / 'missing-dir' / 'disk')

    result = run(disk, 8 * MiB)

    assert result['preallocated'] is False
    assert result['reason'].startswith('fallocate probe failed (')
    assert 'No such file or directory' in result['reason']


def test_keep_size_probe_fails_on_current_util_linux(tmp_path):
    """fallocate -n no longer creates the test file (util-linux >= 2.26)."""
    disk = sparse_file(tmp_path / 'disk', 8 * MiB)

    result = run(disk, 8 * MiB, keep=True)

    assert result['preallocated'] is False
    assert 'No such file or directory' in result['reason']
    assert images.allocated(disk) == 0


def test_no_size_nothing_to_do(tmp_path):
    assert run(str(tmp_path / 'disk'), None)['preallocated'] is False


def test_enospc_is_one_line_naming_the_disk(small_tmpfs):
    disk = sparse_file(small_tmpfs / 'disk', 8 * MiB)

    with pytest.raises(exception.NoSpace) as caught:
        run(disk, 8 * MiB)

    assert str(caught.value) == (f'no space left to preallocate 8388608 '
                                 f'bytes for {disk}')
    assert os.path.exists(disk)


def test_revert_removes_only_the_probe_file(tmp_path):
    disk = sparse_file(tmp_path / 'disk', MiB)
    open(disk + '.fallocate_test', 'w').close()
    task = preallocate.Preallocate('prealloc')

    for _ in range(2):
        task.revert(path=disk, size=MiB, probe_keep_size=True, result=FAILED,
                    flow_failures={'prealloc': FAILED})

    assert os.path.exists(disk)
    assert not os.path.exists(disk + '.fallocate_test')


def test_plan_shows_probe_then_fallocate():
    shown = preallocate.Preallocate('prealloc', inject={
        'path': '/i/disk', 'size': 100, 'probe_keep_size': False}).describe()

    assert shown['command'] == [
        ['fallocate', '-l', '1', '/i/disk.fallocate_test'],
        ['fallocate', '-n', '-l', '100', '/i/disk']]


@pytest.mark.parametrize('planted, doing', [
    ('disk.fallocate_test', 'let fallocate write through it'),
    ('disk', 'preallocate through it'),
])
def test_a_planted_link_is_refused(tmp_path, planted, doing):
    victim = sparse_file(tmp_path / 'victim', MiB)
    if planted != 'disk':
        sparse_file(tmp_path / 'disk', MiB)
    os.symlink(victim, tmp_path / planted)

    with pytest.raises(exception.ImagepipeError,
                       match=f'^{tmp_path}/{planted} is a symbolic link: '
                             f'refusing to {doing}$'):
        run(str(tmp_path / 'disk'), 8 * MiB)

    assert os.path.getsize(victim) == MiB and images.allocated(victim) == 0
    assert os.path.islink(tmp_path / planted)
