import json
import os

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import diskinfo

FAILED = failure.Failure.from_exception(RuntimeError('x'))


def args(info, disk, fmt='raw', atomic=True):
    return {'info': str(info), 'disk': str(disk), 'format': fmt,
            'atomic': atomic}


def record(*a, **kw):
    return diskinfo.RecordDiskFormat('disk-info').execute(**args(*a, **kw))


def forget(*a, result=None, **kw):
    diskinfo.RecordDiskFormat('disk-info').revert(
        result=result, flow_failures={}, **args(*a, **kw))


def content(info):
    with open(info) as f:
        text = f.read()
    assert text.count('\n') == 0
    return json.loads(text)


def test_records_one_json_line(tmp_path):
    info, disk = tmp_path / 'disk.info', tmp_path / 'disk'

    result = record(info, disk, 'qcow2')

    assert result == {'info': str(info), 'disk': str(disk),
                      'format': 'qcow2', 'written': True}
    assert content(info) == {str(disk): 'qcow2'}
    assert oct(os.stat(info).st_mode & 0o777) == '0o644'
    assert not os.path.exists(str(info) + '.tmp')
    assert json.loads(json.dumps(result)) == result


def test_probes_the_disk_and_falls_back_to_raw(tmp_path, qcow2_image):
    info = tmp_path / 'disk.info'

    assert record(info, qcow2_image, None)['format'] == 'qcow2'
    assert record(info, tmp_path / 'missing', None)['format'] == 'raw'
    assert content(info) == {qcow2_image: 'qcow2',
                             str(tmp_path / 'missing'): 'raw'}


@pytest.mark.parametrize('atomic, same_inode', [(True, False),
                                                (False, True)])
def test_atomic_rename_or_in_place(tmp_path, atomic, same_inode):
    info = tmp_path / 'disk.info'
    record(info, tmp_path / 'disk', atomic=atomic)
    inode = os.stat(info).st_ino

    record(info, tmp_path / 'disk.local', atomic=atomic)

    assert (os.stat(info).st_ino == inode) == same_inode
    assert len(content(info)) == 2


def test_same_value_again_is_idempotent(tmp_path):
    info, disk = tmp_path / 'disk.info', tmp_path / 'disk'
    record(info, disk)
    mtime = os.stat(info).st_mtime_ns

    again = record(info, disk)

    assert again['written'] is False
    assert os.stat(info).st_mtime_ns == mtime


def test_refuses_to_overwrite_a_different_value(tmp_path):
    info, disk = tmp_path / 'disk.info', tmp_path / 'disk'
    record(info, disk, 'raw')

    with pytest.raises(exception.ImageUnacceptable,
                       match='Attempted overwrite of an existing value'):
        record(info, disk, 'qcow2')
    assert content(info) == {str(disk): 'raw'}


@pytest.mark.parametrize('text, reason', [
    (b'[1, 2]', 'it holds a JSON list, not an object'),
    (b'{"disk": ', 'Expecting value: line 1 column 10 (char 9)'),
    (b'\xff\xfe garbage', "'utf-8' codec can't decode byte 0xff in "
                         'position 0: invalid start byte'),
])
def test_refuses_what_nova_did_not_write_and_reverts(tmp_path, text, reason):
    info = tmp_path / 'disk.info'
    info.write_bytes(text)

    with pytest.raises(exception.ImagepipeError) as raised:
        record(info, tmp_path / 'disk')
    assert str(raised.value) == (f'{info} is not a disk.info Nova wrote: '
                                 f'{reason}')

    forget(info, tmp_path / 'disk', result=FAILED)  # does not raise
    assert info.read_bytes() == text
    assert os.listdir(tmp_path) == ['disk.info']


@pytest.mark.parametrize('atomic, planted', [(True, 'disk.info.tmp'),
                                             (False, 'disk.info')])
def test_a_planted_link_is_not_written_through(tmp_path, atomic, planted):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'{}')
    before = os.stat(victim)
    (tmp_path / 'inst').mkdir()
    info = tmp_path / 'inst' / 'disk.info'
    os.symlink(victim, tmp_path / 'inst' / planted)

    with pytest.raises(exception.ImagepipeError,
                       match=f'^{tmp_path}/inst/{planted} is a symbolic '
                             'link: refusing to'):
        record(info, tmp_path / 'inst' / 'disk', atomic=atomic)
    forget(info, tmp_path / 'inst' / 'disk', atomic=atomic, result=FAILED)

    assert victim.read_bytes() == b'{}'
    assert os.stat(victim).st_mtime_ns == before.st_mtime_ns
    assert os.path.islink(tmp_path / 'inst' / planted)


def test_mode_is_novas_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        record(tmp_path / 'disk.info', tmp_path / 'disk')
    finally:
        os.umask(old)
    assert os.stat(tmp_path / 'disk.info').st_mode & 0o777 == 0o644


def test_revert_removes_our_entry_then_the_file(tmp_path):
    info = tmp_path / 'disk.info'
    record(info, tmp_path / 'disk')
    record(info, tmp_path / 'disk.local')

    forget(info, tmp_path / 'disk', result=FAILED)
    assert content(info) == {str(tmp_path / 'disk.local'): 'raw'}

    for _ in range(2):
        forget(info, tmp_path / 'disk.local')
    assert not info.exists()


def test_plan_shows_the_entry():
    shown = diskinfo.RecordDiskFormat('disk-info', inject=args(
        '/i/disk.info', '/i/disk', None, atomic=False)).describe()

    assert shown['command'] is None
    assert shown['creates'] == ['/i/disk.info']
    assert shown['notes'][0] == ('records {"/i/disk": "<probed format>"} in '
                                 '/i/disk.info: rewritten in place (Icehouse)')
