"""Nova's image locks, held across the tasks of one locked section.

Nova took ``[X $hex]`` around the whole of fetch_to_raw, which imagepipe splits
into several tasks (fetch, inspect, convert, publish). The first task of a
section acquires the lock and the last one (or a revert) releases it; every
task in between takes it again (a no-op while held), so a process that
resumes a run in the middle of a section takes the lock before it touches
anything. Tasks do none of this themselves: the execute and revert hooks of
:class:`imagepipe.tasks.contract.ImageTask` call :func:`held` and
:func:`abandon` around a task's work. The lock is
an oslo.concurrency external lock (an fcntl lock file named like Nova's,
``$instances_path/locks/nova-<name>``), so a crashed holder releases it with
its process. The lock directory and file are checked first
(:mod:`imagepipe.tasks.safefs`): the lock libraries open the file following
links.

A conductor runs jobs in threads of one process, so a lock is held by a
thread, not by the process: another thread asking for it waits on
oslo.concurrency's internal semaphore as another process waits on the file,
and a thread's locks left held by a run that stopped in a section are
released by :func:`release_owned` once its job ends.
"""

import contextlib
import os
import threading

from oslo_concurrency import lockutils

from imagepipe.tasks import safefs

PREFIX = 'nova-'

_held = {}
_guard = threading.Lock()


def lock_file(name, lock_path):
    """The file oslo.concurrency locks for ``name``: Nova's lock file name
    (``nova-`` and the name, ``/`` turned into ``_``) in ``lock_path``."""
    return os.path.join(lock_path, PREFIX + name.replace(os.sep, '_'))


def hold(name, lock_path, external=True):
    """Acquire lock ``name`` unless this thread already holds it."""
    with _guard:
        if _held.get(name, (None,))[0] == threading.get_ident():
            return
    sem = lockutils.internal_lock(name)
    sem.acquire()
    ext = None
    try:
        if external:
            safefs.directory(lock_path)
            safefs.existing_file(lock_file(name, lock_path), 'lock it')
            ext = lockutils.external_lock(name, PREFIX, lock_path)
            ext.acquire()
    except BaseException:
        sem.release()
        raise
    with _guard:
        _held[name] = (threading.get_ident(), sem, ext)


def release(name):
    """Release lock ``name`` if held; safe to call twice."""
    with _guard:
        held = _held.pop(name, None)
    if held is None:
        return
    _, sem, ext = held
    if ext is not None:
        ext.release()
    sem.release()


def enter(lock):
    """Take the lock a task's ``lock`` argument names (None: no lock).

    ``lock`` is the JSON the flow injects:
    ``{"name": ..., "path": <lock dir>, "external": bool, "last": bool}``.
    """
    if lock:
        hold(lock['name'], lock['path'], lock.get('external', True))


def leave(lock):
    """After execute: release the lock if this task ends its section."""
    if lock and lock.get('last'):
        release(lock['name'])


@contextlib.contextmanager
def held(lock):
    """``enter`` for the body of an execute, ``leave`` after it."""
    enter(lock)
    try:
        yield
    finally:
        leave(lock)


def abandon(lock):
    """On revert: release the lock whatever the task's place in the section."""
    if lock:
        release(lock['name'])


def is_held(name):
    with _guard:
        return name in _held


def release_owned():
    """Release every lock this thread holds (a run that stopped inside a
    section keeps its lock until then); the names released."""
    me = threading.get_ident()
    with _guard:
        names = [name for name, held in _held.items() if held[0] == me]
    for name in names:
        release(name)
    return names
