import filecmp
import json
import os
import stat
import subprocess

import pytest
from taskflow import engines
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import copy
from imagepipe.tasks import locks
from imagepipe.tasks import resize
from tests import images

MiB = images.MiB
FAILED = failure.Failure.from_exception(RuntimeError('x'))


class Boom(task.Task):
    def execute(self):
        raise RuntimeError('boom')


def args(src, dest, reuse=False, cache_scope=None, lock=None):
    return {'src': src, 'dest': dest, 'lock': lock, 'reuse': reuse,
            'cache_scope': cache_scope}


def run(src, dest, staged=False, **kw):
    return copy.CopyImage('copy').execute(**args(src, dest, **kw),
                                          staged=staged)


def revert(src, dest, result, flow_failures, **kw):
    copy.CopyImage('copy').revert(result=result,
                                  flow_failures=flow_failures,
                                  **args(src, dest, **kw))


def test_copy_is_sparse_and_identical(raw_image, tmp_path):
    dest = str(tmp_path / 'disk')

    result = run(raw_image, dest)

    assert result == {'path': dest, 'copied': True, 'size': 64 * MiB}
    assert filecmp.cmp(raw_image, dest, shallow=False)
    assert images.allocated(dest) < 16 * MiB
    assert images.allocated(dest) <= images.allocated(raw_image) + MiB
    assert not os.path.exists(dest + '.tmp')
    assert json.loads(json.dumps(result)) == result


def cached(path):
    """Bytes of ``path`` in the page cache (util-linux fincore)."""
    out = subprocess.run(['fincore', '--bytes', '--noheadings', '--output',
                          'RES', path], check=True, capture_output=True,
                         text=True).stdout
    return int(out.split()[0])


def test_copy_leaves_neither_file_in_the_page_cache(raw_image, tmp_path):
    fs = subprocess.run(['stat', '-f', '-c', '%T', str(tmp_path)],
                        capture_output=True, text=True).stdout.strip()
    if fs == 'tmpfs':
        pytest.skip('tmpfs pages are the files themselves')
    src = str(tmp_path / 'base')
    with open(raw_image, 'rb') as f, open(src, 'wb') as out:
        out.write(f.read())     # cached, as a base just published would be
        out.flush()
        os.fsync(out.fileno())
    assert cached(src) > 4 * MiB

    run(src, str(tmp_path / 'disk'))

    assert cached(src) == cached(str(tmp_path / 'disk')) == 0


def test_reuse_keeps_an_existing_destination(raw_image, tmp_path):
    dest = tmp_path / 'abc_1'
    dest.write_bytes(b'resized earlier')

    result = run(raw_image, str(dest), reuse=True, cache_scope=['copy'])

    assert result == {'path': str(dest), 'copied': False, 'size': 15}
    assert dest.read_bytes() == b'resized earlier'


def test_execute_again_after_a_crash(raw_image, tmp_path):
    dest = tmp_path / 'disk'
    (tmp_path / 'disk.tmp').write_bytes(b'partial')
    dest.write_bytes(b'stale')

    run(raw_image, str(dest))
    result = run(raw_image, str(dest))

    assert result['copied'] and filecmp.cmp(raw_image, dest, shallow=False)
    assert not (tmp_path / 'disk.tmp').exists()


def test_revert_of_an_instance_disk_removes_it(raw_image, tmp_path):
    dest = str(tmp_path / 'disk')
    result = run(raw_image, dest)
    open(dest + '.tmp', 'w').close()

    for outcome in (result, FAILED):
        revert(raw_image, dest, outcome, {'later': FAILED})

    assert not os.path.exists(dest) and not os.path.exists(dest + '.tmp')


@pytest.mark.parametrize('scope, failed, copied, kept', [
    (['copy', 'extend'], 'extend', True, False),
    (['copy', 'extend'], 'overlay', True, True),
    (['copy', 'extend'], 'extend', False, True),
    ([], 'copy', True, True),
])
def test_revert_of_a_cache_entry_follows_its_scope(tmp_path, scope, failed,
                                                   copied, kept):
    dest = tmp_path / 'abc_1'
    dest.write_bytes(b'entry')
    (tmp_path / 'abc_1.tmp').write_bytes(b'partial')
    result = {'path': str(dest), 'copied': copied, 'size': 5}

    for _ in range(2):
        revert('/base', str(dest), result, {failed: FAILED},
               cache_scope=scope)

    assert dest.exists() == kept
    assert not (tmp_path / 'abc_1.tmp').exists()


def test_revert_of_a_failed_copy_keeps_the_cache_entry(tmp_path):
    dest = tmp_path / 'abc_1'
    dest.write_bytes(b'someone else made this')

    revert('/base', str(dest), FAILED, {'copy': FAILED}, cache_scope=['copy'])

    assert dest.exists()


def test_lock_held_until_the_section_ends(raw_image, tmp_path):
    lock = {'name': 'abc', 'path': str(tmp_path), 'last': False}
    dest = str(tmp_path / 'disk')

    run(raw_image, dest, lock=lock)
    assert locks.is_held('abc')
    run(raw_image, dest, lock={**lock, 'last': True})
    assert not locks.is_held('abc')
    run(raw_image, dest, lock=lock)
    revert(raw_image, dest, FAILED, {'copy': FAILED}, lock=lock)
    assert not locks.is_held('abc')


def run_flow(*tasks):
    with pytest.raises(RuntimeError, match='boom'):
        engines.run(linear_flow.Flow('f').add(*tasks))


def test_engine_keeps_a_cache_entry_when_a_later_step_fails(raw_image,
                                                             tmp_path):
    dest = str(tmp_path / 'abc_1')
    scope = ['copy-base', 'resize-base', 'resize-fs-base']

    run_flow(
        copy.CopyImage('copy-base', inject={
            **args(raw_image, dest, reuse=True, cache_scope=scope),
            'staged': True}),
        resize.ResizeImage('resize-base', inject={
            'path': dest + '.tmp', 'size': 80 * MiB, 'format': 'raw',
            'lock': None, 'origin': {'virtual_size': 64 * MiB}},
            wire={'made': 'copy-base'}),
        resize.ResizeFilesystem('resize-fs-base', inject={
            'path': dest + '.tmp', 'variant': 'blind', 'lock': None},
            wire={'resize': 'resize-base', 'made': 'copy-base'}),
        Boom('overlay'))

    assert images.info(dest)['virtual-size'] == 80 * MiB
    assert not os.path.exists(dest + '.tmp')


def test_a_staged_entry_is_not_there_before_it_is_finished(raw_image,
                                                            tmp_path):
    dest = str(tmp_path / 'abc_1')
    made = run(raw_image, dest, reuse=True, cache_scope=['copy'],
               staged=True)
    assert made == {'path': dest, 'staged': dest + '.tmp', 'copied': True,
                    'size': os.path.getsize(raw_image)}
    assert not os.path.exists(dest)
    # a crash now, then another run: the copy is made again, not reused
    assert run(raw_image, dest, reuse=True, cache_scope=['copy'],
               staged=True)['copied'] is True


def test_engine_removes_a_cache_entry_when_its_scope_fails(raw_image,
                                                           tmp_path):
    dest = str(tmp_path / 'abc_1')

    run_flow(
        copy.CopyImage('copy-base', inject=args(
            raw_image, dest, cache_scope=['copy-base', 'resize-base'])),
        Boom('resize-base'))

    assert not os.path.exists(dest)


def test_plan_shows_the_copy_into_a_temporary_name():
    shown = copy.CopyImage('copy', inject=args(
        '/b/abc', '/b/abc_1', reuse=True, cache_scope=['copy'])).describe()

    assert shown['command'] == ['cp', '--sparse=always', '--reflink=auto',
                                '/b/abc', '/b/abc_1.tmp']
    assert shown['creates'] == ['/b/abc_1']
    assert shown['source'] == 'libvirt.utils.copy_image'
    assert any('removed if one of copy fails' in n for n in shown['notes'])


def test_a_link_at_the_temporary_name_is_refused(raw_image, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    dest = str(tmp_path / 'disk')
    os.symlink(victim, dest + '.tmp')

    with pytest.raises(exception.ImagepipeError,
                       match=f'^{dest}.tmp is a symbolic link: refusing to '
                             'write through it$'):
        run(raw_image, dest)
    revert(raw_image, dest, FAILED, {'copy': FAILED})

    assert victim.read_bytes() == b'keep'
    assert os.path.islink(dest + '.tmp') and not os.path.exists(dest)


def test_a_linked_cache_entry_is_not_reused(raw_image, tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(victim, tmp_path / 'abc_1')

    with pytest.raises(exception.ImagepipeError,
                       match='abc_1 is a symbolic link: refusing to reuse '
                             'it$'):
        run(raw_image, str(tmp_path / 'abc_1'), reuse=True,
            cache_scope=['copy'])
    assert victim.read_bytes() == b'keep'


def test_a_linked_source_is_not_copied(raw_image, tmp_path):
    os.symlink(raw_image, tmp_path / 'abc')

    with pytest.raises(exception.ImagepipeError,
                       match='abc is a symbolic link: refusing to make a '
                             'file from it$'):
        run(str(tmp_path / 'abc'), str(tmp_path / 'disk'))
    assert not os.path.exists(tmp_path / 'disk')


@pytest.mark.parametrize('source, made', [(0o600, 0o600), (0o644, 0o644),
                                          (0o666, 0o644)])
def test_the_copy_is_never_more_readable_than_its_source(
        raw_image, tmp_path, source, made):
    src = tmp_path / 'abc'
    src.write_bytes(b'\0' * 4096)
    os.chmod(src, source)
    old = os.umask(0)
    try:
        run(str(src), str(tmp_path / 'disk'))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / 'disk').st_mode) == made


def test_a_revert_that_cannot_remove_the_disk_says_so(raw_image, tmp_path):
    dest = str(tmp_path / 'disk')
    result = run(raw_image, dest)
    if subprocess.run(['chattr', '+i', dest]).returncode:
        pytest.skip('chattr +i is not possible here')
    try:
        with pytest.raises(exception.ImagepipeError) as raised:
            revert(raw_image, dest, result, {'later': FAILED})
    finally:
        subprocess.run(['chattr', '-i', dest], check=True)
    assert str(raised.value) == (f'could not remove {dest} (Operation not '
                                 'permitted): remove it by hand')
