"""What every step shares: how its progress reaches the run database, and
how it makes and removes files under instances_path."""

import contextlib
import os
import stat
import subprocess

import pytest
from taskflow import engines
from taskflow import task as tf_task
from taskflow.patterns import linear_flow

from imagepipe import exception
from imagepipe.tasks import contract
from imagepipe.tasks import locks
from imagepipe.tasks import safefs


class Step(contract.ImageTask):
    def work(self):
        pass


def _reports(task):
    seen = []
    task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS,
                           lambda event, details: seen.append(details))
    return seen


def test_progress_is_throttled_first_and_last_kept(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(contract.time, 'monotonic', lambda: clock[0])
    step = Step('step')
    seen = _reports(step)
    for i in range(1, 101):          # 100 reports, 1/64 s apart
        step.report(i / 100, done=i)
        clock[0] += 1 / 64
    assert [d['done'] for d in seen] == [1, 33, 65, 97, 100]
    assert seen[-1]['progress'] == 1.0


def test_engine_progress_calls_are_not_stored_twice():
    step = Step('step')
    seen = _reports(step)
    step.update_progress(0.0)
    step.update_progress(1.0)
    assert seen == []


# -- Nova's lock, taken by the hooks around work and undo --------------------

class Locked(contract.ImageTask):
    """Says whether its lock is held while it works; makes ``made``."""

    def work(self, name, made):
        with open(made, 'w') as f:
            f.write(str(locks.is_held(name)))
        return locks.is_held(name)

    def undo(self, name, made, result, **_):
        with open(made, 'w') as f:
            f.write(f'undone, held {locks.is_held(name)}')


def _section(tmp_path, names):
    """``names`` as the tasks of one section under lock ``L``."""
    lock = {'name': 'L', 'path': str(tmp_path / 'locks'), 'external': True}
    return [Locked(n, inject={'name': 'L', 'made': str(tmp_path / n),
                              'lock': {**lock, 'last': i == len(names) - 1}})
            for i, n in enumerate(names)]


def test_a_section_holds_its_lock_from_first_to_last_task(tmp_path):
    first, middle, last = _section(tmp_path, ['first', 'middle', 'last'])
    assert 'lock' in first.rebind and 'lock' in first.revert_rebind
    flow = linear_flow.Flow('section').add(first, middle, last)
    engine = engines.load(flow)
    engine.run()
    assert [engine.storage.get(n) for n in ('first', 'middle', 'last')] == [
        True, True, True]
    assert (tmp_path / 'middle').read_text() == 'True'
    assert not locks.is_held('L')
    assert (tmp_path / 'locks' / 'nova-L').is_file()     # a lock file


def test_a_run_resumed_inside_a_section_takes_the_lock_first(tmp_path):
    _, middle, last = _section(tmp_path, ['first', 'middle', 'last'])
    assert not locks.is_held('L')          # a new process: nothing held
    args = {'name': 'L', 'made': str(tmp_path / 'middle')}
    assert middle.execute(lock=middle.inject['lock'], **args) is True
    assert locks.is_held('L')              # not the last: kept
    assert last.execute(lock=last.inject['lock'], name='L',
                        made=str(tmp_path / 'last')) is True
    assert not locks.is_held('L')


def test_undo_runs_inside_the_lock_which_is_then_released(tmp_path):
    first, _, _ = _section(tmp_path, ['first', 'middle', 'last'])
    lock, made = first.inject['lock'], str(tmp_path / 'first')
    first.execute(lock=lock, name='L', made=made)
    first.revert(lock=lock, name='L', made=made, result=True,
                 flow_failures={})
    assert (tmp_path / 'first').read_text() == 'undone, held True'
    assert not locks.is_held('L')


def test_a_task_implements_work_not_execute():
    with pytest.raises(TypeError, match='implement work and undo'):
        type('Direct', (contract.ImageTask,),
             {'execute': lambda self: None})


# -- files under instances_path (imagepipe.tasks.safefs) ----------------------

@contextlib.contextmanager
def _umask(mask):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_create_makes_missing_directories_0755_and_the_file_exact(tmp_path):
    path = tmp_path / 'instances' / 'vm1' / 'disk.tmp'

    with _umask(0o077):
        os.close(safefs.create(str(path), 0o640))

    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_create_replaces_a_leftover_and_refuses_a_link(tmp_path):
    leftover = tmp_path / 'disk.tmp'
    leftover.write_bytes(b'interrupted')
    fd = safefs.create(str(leftover), 0o644)
    os.close(fd)
    assert leftover.read_bytes() == b''

    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(victim, tmp_path / 'link.tmp')
    with pytest.raises(exception.ImagepipeError,
                       match=f'^{tmp_path}/link.tmp is a symbolic link: '
                             'refusing to write through it$'):
        safefs.create(str(tmp_path / 'link.tmp'), 0o644)
    assert victim.read_bytes() == b'keep'


@pytest.mark.parametrize('planted', ['link', 'file', 'foreign'])
def test_directories_must_be_real_and_ours(tmp_path, planted):
    where = tmp_path / 'vm1'
    if planted == 'link':
        (tmp_path / 'elsewhere').mkdir()
        os.symlink(tmp_path / 'elsewhere', where)
        reason = 'is a symbolic link: refusing to write in it'
    elif planted == 'file':
        where.write_bytes(b'')
        reason = 'is a regular file: refusing to write in it'
    else:
        where.mkdir()
        os.chown(where, 4242, 4242)
        reason = ('is owned by uid 4242, not by this user or root: '
                  'refusing to write in it')

    with pytest.raises(exception.ImagepipeError, match=f'^{where} {reason}$'):
        safefs.create(str(where / 'disk'), 0o644)
    assert not os.path.exists(tmp_path / 'elsewhere' / 'disk')


def test_remove_leaves_what_imagepipe_never_makes(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(victim, tmp_path / 'link')
    (tmp_path / 'dir').mkdir()
    os.symlink(tmp_path, tmp_path / 'linked-dir')

    assert not safefs.remove(str(tmp_path / 'link'))
    assert not safefs.remove(str(tmp_path / 'dir'))
    assert not safefs.remove(str(tmp_path / 'linked-dir' / 'victim'))
    assert not safefs.remove(str(tmp_path / 'missing' / 'disk'))
    assert not safefs.remove(str(victim / 'under-a-file'))

    assert os.path.islink(tmp_path / 'link') and victim.read_bytes() == b'keep'
    assert (tmp_path / 'dir').is_dir()


def test_a_file_that_cannot_be_removed_says_what_was_left(tmp_path):
    disk = tmp_path / 'disk'
    disk.write_bytes(b'')
    if subprocess.run(['chattr', '+i', str(disk)]).returncode:
        pytest.skip('chattr +i is not possible here')
    try:
        with pytest.raises(exception.ImagepipeError) as raised:
            safefs.remove(str(disk))
    finally:
        subprocess.run(['chattr', '-i', str(disk)], check=True)
    assert str(raised.value) == (f'could not remove {disk} (Operation not '
                                 'permitted): remove it by hand')


def test_publish_refuses_a_link_at_the_final_name(tmp_path):
    victim = tmp_path / 'victim'
    victim.write_bytes(b'keep')
    os.symlink(victim, tmp_path / 'disk')
    (tmp_path / 'disk.tmp').write_bytes(b'new')

    with pytest.raises(exception.ImagepipeError,
                       match='disk is a symbolic link: refusing to rename '
                             'over it$'):
        safefs.publish(str(tmp_path / 'disk.tmp'), str(tmp_path / 'disk'))
    assert os.path.islink(tmp_path / 'disk')
    assert victim.read_bytes() == b'keep'


@pytest.mark.parametrize('source, made', [(0o600, 0o600), (0o640, 0o640),
                                          (0o755, 0o644), (0o777, 0o644)])
def test_a_file_made_from_another_is_never_wider(tmp_path, source, made):
    src = tmp_path / 'base'
    src.write_bytes(b'')
    os.chmod(src, source)
    assert safefs.source_mode(str(src)) == made
