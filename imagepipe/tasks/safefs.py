"""Files under instances_path, made and removed without following a link.

A symbolic link planted where imagepipe writes (``$hex.part``,
``disk.tmp``...) would send the bytes wherever it points. So every file a
task makes, opens for writing, trusts as cached, renames over or removes
goes through here: its directory is opened with ``O_NOFOLLOW`` and must be a
real directory owned by this user or root (made 0755 when missing;
instances_path itself may be a link), a new file is created with
``O_EXCL|O_NOFOLLOW`` in it (a regular leftover of an interrupted attempt is
unlinked first), an existing one is opened or lstat-ed without following.
Anything else than a regular file where imagepipe expects its own is
refused with one line naming it, and never removed: it was planted.

The tools (cp, qemu-img, mkfs) write into a file created here just before
they run, which keeps the mode given here. Nova's processes ran under umask
022 (0644); a file made from another is never more readable than it.
"""

import errno
import os
import stat

from imagepipe import exception

#: The mode Nova's bases, disks and disk.info had (umask 022).
NOVA_MODE = 0o644
DIR_MODE = 0o755

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                 | os.O_CLOEXEC)


class UnsafePath(exception.ImagepipeError):
    """A link or a foreign file where imagepipe expects its own."""


class FileError(exception.ImagepipeError):
    """A file or directory under instances_path cannot be made or removed.

    ``errno`` is the refusal's, when the system gave one.
    """

    def __init__(self, message, code=None):
        super().__init__(message)
        self.errno = code


def nova_mode(source_mode=None):
    """Nova's mode, never wider than ``source_mode`` (None: no limit)."""
    return NOVA_MODE if source_mode is None else NOVA_MODE & source_mode


def _kind(st):
    if stat.S_ISLNK(st.st_mode):
        return 'a symbolic link'
    if stat.S_ISDIR(st.st_mode):
        return 'a directory'
    return 'a regular file' if stat.S_ISREG(st.st_mode) else 'a special file'


def _refuse(path, st, doing):
    return UnsafePath(f'{path} is {_kind(st)}: refusing to {doing}')


def _failed(doing, path, e):
    if e.errno == errno.ENOSPC:
        return exception.NoSpace(f'{path}: no space left on device')
    return FileError(f'cannot {doing} {path}: {e.strerror}', e.errno)


def _open_dir(path, create):
    """fd of the directory ``path``, checked; None if missing and not
    ``create``."""
    path = path or '.'
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        if not create:
            return None
        return _make_dir(path)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse_dir(path) from None
        raise _failed('open directory', path, e) from None
    try:
        _check_owner(path, os.fstat(fd))
    except UnsafePath:
        os.close(fd)
        raise
    return fd


def _refuse_dir(path):
    try:
        st = os.lstat(path)
    except OSError as e:
        return _failed('open directory', path, e)
    return _refuse(path, st, 'write in it')


def _check_owner(path, st):
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafePath(f'{path} is owned by uid {st.st_uid}, not by this '
                         'user or root: refusing to write in it')


def _make_dir(path):
    """Create ``path`` (and its parents) with mode 0755; its checked fd."""
    try:
        os.makedirs(os.path.dirname(path) or '.', DIR_MODE, exist_ok=True)
        os.mkdir(path, DIR_MODE)
        created = True
    except FileExistsError:  # made meanwhile by another run
        created = False
    except OSError as e:
        raise _failed('create directory', path, e) from None
    fd = _open_dir(path, create=False)
    if fd is None:
        raise FileError(f'cannot create directory {path}: removed as it '
                        'was made')
    if created:
        os.fchmod(fd, DIR_MODE)  # exactly, whatever the umask
    return fd


def directory(path):
    """Check the directory ``path`` (created 0755 when missing)."""
    os.close(_open_dir(path, create=True))


def _lstat_in(dfd, name):
    try:
        return os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _lstat(path):
    """lstat of ``path`` in its checked directory; None when missing."""
    dirpath, name = os.path.split(path)
    dfd = _open_dir(dirpath, create=False)
    if dfd is None:
        return None
    try:
        return _lstat_in(dfd, name)
    finally:
        os.close(dfd)


def existing_file(path, doing):
    """True when ``path`` is a regular file, False when nothing is there.

    Anything else (a link, a directory, a device) is refused, ``doing``
    saying what imagepipe was about to do with it.
    """
    st = _lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st, doing)
    return st is not None


def source_mode(path):
    """The mode for a file made from the regular file ``path``."""
    st = _lstat(path)
    if st is None:
        raise FileError(f'cannot read {path}: it does not exist',
                        errno.ENOENT)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st, 'make a file from it')
    return nova_mode(stat.S_IMODE(st.st_mode))


def create(path, mode, flags=0):
    """A new file at ``path``, opened read-write: its fd, with ``mode``.

    A regular file already there is replaced (an interrupted attempt's);
    ``flags`` are added to the open's (e.g. ``O_DIRECT``).
    """
    dirpath, name = os.path.split(path)
    dfd = _open_dir(dirpath, create=True)
    try:
        try:
            fd = os.open(name, _CREATE_FLAGS | flags, mode, dir_fd=dfd)
        except FileExistsError:
            st = _lstat_in(dfd, name)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise _refuse(path, st, 'write through it') from None
            _unlink_in(dfd, name, path)
            fd = os.open(name, _CREATE_FLAGS | flags, mode, dir_fd=dfd)
    except OSError as e:
        raise _failed('create', path, e) from None
    finally:
        os.close(dfd)
    os.fchmod(fd, mode)  # exactly, whatever the umask
    return fd


def open_existing(path, flags=os.O_RDONLY):
    """fd of the regular file ``path``; FileNotFoundError when missing.

    ``O_NONBLOCK``: a FIFO planted there is refused, not waited on.
    """
    dirpath, name = os.path.split(path)
    dfd = _open_dir(dirpath, create=False)
    if dfd is None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise UnsafePath(f'{path} is a symbolic link: refusing to open '
                         'it') from None
    finally:
        os.close(dfd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _refuse(path, st, 'open it')
    return fd


def open_or_create(path, mode):
    """fd (read-write) of the file ``path``, made if missing; ``mode`` set.

    For a file continued where it is (a partial download, disk.info
    rewritten in place).
    """
    try:
        fd = open_existing(path, os.O_RDWR)
    except FileNotFoundError:
        return create(path, mode)
    os.fchmod(fd, mode)
    return fd


def _unlink_in(dfd, name, path):
    try:
        os.unlink(name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise FileError(f'could not remove {path} ({e.strerror}): remove '
                        'it by hand', e.errno) from None


def remove(path):
    """Delete the regular file ``path`` if it is there; True when removed.

    What imagepipe never makes is left alone: a link or a directory at
    ``path``, or anything in a directory that is a link. A file that cannot
    be removed raises :class:`FileError` saying what was left.
    """
    dirpath, name = os.path.split(path)
    try:
        dfd = os.open(dirpath or '.', _DIR_FLAGS)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False
        raise FileError(f'could not look for {path} ({e.strerror}): '
                        'remove it by hand if it is there') from None
    try:
        st = _lstat_in(dfd, name)
        if st is None or not stat.S_ISREG(st.st_mode):
            return False
        _unlink_in(dfd, name, path)
        return True
    finally:
        os.close(dfd)


def publish(tmp, final):
    """Rename the finished ``tmp`` to ``final`` in its directory, durably.

    ``tmp`` must be a regular file; ``final``, if there, too: a link there
    is refused rather than replaced.
    """
    fd = open_existing(tmp)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    dirpath, name = os.path.split(final)
    dfd = _open_dir(dirpath, create=True)
    try:
        st = _lstat_in(dfd, name)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _refuse(final, st, 'rename over it')
        try:
            os.rename(os.path.basename(tmp), name, src_dir_fd=dfd,
                      dst_dir_fd=dfd)
        except OSError as e:
            raise _failed('rename to', final, e) from None
        os.fsync(dfd)
    finally:
        os.close(dfd)
