"""Who may drive what, checked before any step runs.

- one process at a time drives a run: an external lock per run id;
- one run at a time builds an instance: an external lock per instance
  directory, held by whoever drives a run of it;
- a run starts fresh (a new ``run``, or a reverted run retried) only when
  none of the instance's files it would create exists, and no other run of
  the instance is unfinished. Nova skipped an instance disk that existed;
  imagepipe refuses instead, so that a disk somebody else made (or that an
  earlier run left) is never overwritten nor adopted silently.

The locks live with the run database, not with a configuration: every
process that reaches the database must see them, whatever its state_path.
For a SQLite database they are lock files in a directory named after the
database file (``<file>.locks``, beside it, where SQLite keeps its own
``-wal`` and ``-shm`` files). Any other database is reached over the network
from many hosts, where a lock file cannot reach: on PostgreSQL the locks are
advisory locks in the database itself (:mod:`imagepipe.runner.advisory`),
which hold between hosts; on any other (MySQL) they stay under the
configuration's ``state_path/locks`` and hold between the processes of one
host only.

On PostgreSQL a lock can also be lost while held, when the database
restarts and another process takes it before the holder takes it again
(:mod:`imagepipe.runner.advisory`): :func:`suspend_on_lost_lock` then
suspends the run being driven.

Everything that refuses raises :class:`~imagepipe.exception.Refused`
(exit status 2) without changing the run.
"""

import contextlib
import hashlib
import logging
import os
import threading

from oslo_concurrency import lockutils

from imagepipe import exception
from imagepipe.runner import advisory
from imagepipe.runner import persistence
from imagepipe.runner import store

LOG = logging.getLogger('imagepipe.locks')

LOCK_PREFIX = 'imagepipe-'

#: files an instance keeps that are records, not disks: their existence
#: does not stop a fresh run (diskinfo accepts a matching entry)
RECORDS = ('disk.info',)

#: characters of an instance name kept readable in its lock's file name
READABLE = 64


def lock_dir(connection, state_path):
    """Where the locks that guard the runs in ``connection`` live: a
    directory, or the database itself
    (:class:`~imagepipe.runner.advisory.AdvisoryLocks`)."""
    path = persistence.sqlite_path(connection)
    if path is None:
        return (advisory.for_connection(connection)
                or os.path.join(state_path, 'locks'))
    if path == ':memory:':
        return os.path.join(state_path, 'locks')
    return os.path.abspath(path) + '.locks'


def _external(name, lock_dir):
    return lockutils.external_lock(name, LOCK_PREFIX, lock_dir)


def _acquire(lock, blocking):
    try:
        return lock.acquire(blocking=blocking)
    except OSError as e:
        raise exception.ConfigError(
            f'cannot take the lock {os.fsdecode(lock.path)}: '
            f'{e.strerror}') from None


@contextlib.contextmanager
def _held(name, lock_dir, busy):
    if isinstance(lock_dir, advisory.AdvisoryLocks):
        with lock_dir.held(name) as mine:
            if not mine:
                raise exception.Busy(busy)
            yield
        return
    lock = _external(name, lock_dir)
    if not _acquire(lock, blocking=False):
        raise exception.Busy(busy)
    try:
        yield
    finally:
        lock.release()


def run_lock(run_id, lock_dir):
    """Only one process drives a run."""
    return _held(f'run-{run_id}', lock_dir,
                 f'run {run_id} is being driven by another process')


def instance_lock_name(directory):
    """``instance-<name, cut>-<hash of the directory>``: a file name well
    under NAME_MAX whatever the instance is called."""
    digest = hashlib.sha1(directory.encode()).hexdigest()[:16]
    return f'instance-{os.path.basename(directory)[:READABLE]}-{digest}'


def instance_lock(kwargs, lock_dir):
    """Only one run at a time builds an instance."""
    directory = store.instance_dir(kwargs)
    return _held(instance_lock_name(directory), lock_dir,
                 f"instance {kwargs['request']['instance']} ({directory}) "
                 'is being built by another process')


def is_active(run_id, lock_dir):
    """True while some process holds the run's lock (drives it).

    A lock file that does not exist is held by nobody, and is not made
    (a listing creates nothing)."""
    if isinstance(lock_dir, advisory.AdvisoryLocks):
        return lock_dir.is_held(f'run-{run_id}')
    lock = _external(f'run-{run_id}', lock_dir)
    if not os.path.exists(lock.path):
        return False
    if not _acquire(lock, blocking=False):
        return True
    lock.release()
    return False


@contextlib.contextmanager
def suspend_on_lost_lock(engine, run_id):
    """While ``engine`` runs, a lock the calling thread holds on PostgreSQL
    that another process takes while the database restarts suspends it
    (the step in progress ends first; the run stays resumable), with one
    line saying why. Nothing happens with any other database.
    """
    holds = advisory.held_here()
    if not holds:
        yield
        return
    once = threading.Lock()
    suspender = threading.Thread(target=engine.suspend, daemon=True)
    ended = []

    def lost(why):
        with once:  # the run and the instance lock may both go
            if ended or suspender.ident is not None:
                return
            # not in the keeper: suspend() waits for the step in progress
            suspender.start()
        LOG.error('run %s suspends: %s: resume it once that process is '
                  'done with it', run_id, why)

    for hold in holds:
        hold.when_lost(lost)
    try:
        yield
    finally:
        for hold in holds:
            hold.when_lost(None)
        with once:
            ended.append(True)
        if suspender.ident is not None:
            suspender.join()


def instance_files(flow, kwargs):
    """The instance's own files (disks, devices) ``flow`` would create."""
    inside = store.instance_dir(kwargs) + os.sep
    found = []
    for atom in store.atoms(flow):
        describe = getattr(atom, 'describe', None)
        if describe is None:
            continue
        for path in describe().get('creates', ()):
            mine = path.startswith(inside) or path.startswith('/dev/')
            if (mine and os.path.basename(path) not in RECORDS
                    and path not in found):
                found.append(path)
    return found


def check_fresh(runs, flow, kwargs, run_id=None):
    """Refuse a fresh start over an instance that has another unfinished
    run (whose disks it may be), or disks.

    ``runs`` is the :class:`~imagepipe.runner.store.RunStore`. Call it
    holding the instance lock.
    """
    name = kwargs['request']['instance']
    directory = store.instance_dir(kwargs)
    for fd in runs.of_instance(directory):
        if fd.uuid == run_id or store.state_of(fd) in store.FINISHED:
            continue
        meta = fd.meta.get('imagepipe', {})
        other = meta.get('instance_dir')
        if other is None:  # a run stored before instance_dir was recorded
            other = store.instance_dir(store.factory_kwargs(fd))
        if other == directory:
            raise exception.Refused(
                f'instance {name} has an unfinished run {fd.uuid} '
                f'({store.state_of(fd)}): continue it with "imagepipe resume '
                f'{fd.uuid}" or abandon it with "imagepipe abandon '
                f'{fd.uuid}"')
    existing = [p for p in instance_files(flow, kwargs)
                if os.path.lexists(p)]
    if existing:
        raise exception.Refused(
            f'instance {name} already has {existing[0]}: imagepipe does not '
            'overwrite an existing disk (Nova skipped it); remove it or '
            'choose another instance name')
