"""Nova's limit on disk operations at once, for every run on this host.

Modern Nova lets at most ``[compute] max_concurrent_disk_ops`` image
downloads and ``qemu-img convert`` commands run at once: its
``disk_ops_semaphore`` (nova/compute/utils.py@33.0.2), taken around the
download in ``fetch`` and around the command in ``_convert_image``
(nova/virt/images.py@33.0.2), which the LVM backend's write into the volume
goes through too. It is a semaphore of the one nova-compute of a host.
imagepipe's runs are processes of their own (``imagepipe run``) or threads
of a conductor, so here the limit is a semaphore of the host: N slot files,
``imagepipe-disk-ops.<i>``, in the lock directory under instances_path.

A slot is held by a non-blocking ``flock`` on an open file of its own. A
flock belongs to the open file, not to the process, so it keeps out another
thread of the same process as it keeps out another process, and it goes
with a process that dies. When every slot is held the caller looks again
after a short sleep that grows to :data:`LONGEST_WAIT` (no busy loop), and
gives up the wait when its run is asked to stop.

0, Nova's default, is no limit: nothing is opened and no file is made.
"""

import contextlib
import errno
import fcntl
import logging
import os
import stat
import time

from imagepipe import stop
from imagepipe.tasks import safefs

LOG = logging.getLogger(__name__)

SLOT = 'imagepipe-disk-ops.{}'
#: Seconds before the first look again when every slot is held; doubled
#: at each look up to LONGEST_WAIT.
FIRST_WAIT = 0.01
LONGEST_WAIT = 0.2

_OPEN_FLAGS = (os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
               | os.O_CLOEXEC)


def limit(slots, lock_path):
    """The ``disk_ops`` argument a flow injects: None when unlimited."""
    return {'slots': slots, 'path': lock_path} if slots else None


def slot_file(lock_path, index):
    return os.path.join(lock_path, SLOT.format(index))


def slot(disk_ops):
    """A context holding one slot of ``disk_ops`` (None: a no-op)."""
    if not disk_ops:
        return contextlib.nullcontext()
    return _held(disk_ops['slots'], disk_ops['path'])


def note(disk_ops, what):
    """The plan's note on a step whose ``what`` holds a slot."""
    if not disk_ops:
        return []
    return [f"{what} waits while {disk_ops['slots']} downloads or "
            'conversions run on this host ([compute] '
            'max_concurrent_disk_ops: the disk_ops_semaphore of '
            'nova/compute/utils.py@33.0.2)']


@contextlib.contextmanager
def _held(slots, lock_path):
    fd = _take(slots, lock_path)
    try:
        yield
    finally:
        os.close(fd)  # the only descriptor of its open file: the flock goes


def _take(slots, lock_path):
    """The descriptor of the slot file this caller now holds."""
    safefs.directory(lock_path)
    fds = []
    wait = FIRST_WAIT
    try:
        for i in range(slots):
            fds.append(_open(slot_file(lock_path, i)))
        while True:
            for i, fd in enumerate(fds):
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                fds[i] = None
                return fd
            if wait == FIRST_WAIT:
                LOG.debug('all %d disk operation slots in %s are held: '
                          'waiting', slots, lock_path)
            stop.check('the wait for a disk operation slot')
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)
    finally:
        for fd in fds:
            if fd is not None:
                os.close(fd)


def _open(path):
    """An open file of the slot ``path`` (made when missing, never
    replaced: other runs may hold it)."""
    try:
        fd = os.open(path, _OPEN_FLAGS, safefs.NOVA_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise safefs.UnsafePath(f'{path} is a symbolic link: refusing '
                                    'to lock it') from None
        raise safefs.FileError(f'cannot open {path}: {e.strerror}',
                               e.errno) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise safefs.UnsafePath(f'{path} is not a regular file: refusing '
                                'to lock it')
    return fd
