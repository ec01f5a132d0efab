"""The one way imagepipe runs an external command.

Every command runs with ``LC_ALL=C`` (so the output parsed below is never
translated), a missing tool becomes one error naming the Debian package to
install, and ``qemu-img info`` runs under the resource limits modern Nova
uses against hostile images.

Commands are started with :func:`subprocess.run`, not oslo.concurrency's
processutils, whose cost is in the way at seven commands a boot: it always
passes a ``preexec_fn`` (only to restore SIGPIPE, which ``subprocess`` does
itself), so Python forks the whole interpreter instead of using vfork, and
it masks passwords in every command line and output with some 400 regular
expressions. 9.5 ms a command against 1.8 ms, measured in a run's process.

The limits are set by util-linux's ``prlimit`` command, which execs the tool
with them (processutils starts a Python interpreter for that, ~50 ms).
Every command dies with imagepipe: util-linux's ``setpriv --pdeathsig KILL``
execs it with ``PR_SET_PDEATHSIG``. A run killed alone would otherwise leave
its ``qemu-img convert`` writing into the file that the resumed run writes
again. A stop request (:mod:`imagepipe.stop`, a run suspending) ends the
command at once: SIGTERM, then SIGKILL after GRACE seconds; the step fails
with :class:`~imagepipe.stop.Stopped`, also when the signal that suspends
the run reached the command first (Ctrl-C reaches the whole group).
"""

import contextlib
import errno
import logging
import os
import re
import select
import selectors
import shlex
import shutil
import subprocess
import time

from oslo_utils import imageutils
from oslo_utils import units

from imagepipe import exception
from imagepipe import stop

LOG = logging.getLogger(__name__)

#: Debian package that provides each tool imagepipe may run.
PACKAGES = {
    'qemu-img': 'qemu-utils',
    'qemu-nbd': 'qemu-utils',
    'e2fsck': 'e2fsprogs',
    'resize2fs': 'e2fsprogs',
    'e2label': 'e2fsprogs',
    'mkfs.ext3': 'e2fsprogs',
    'mkfs.ext4': 'e2fsprogs',
    'mkfs.vfat': 'dosfstools',
    'mkswap': 'util-linux',
    'fallocate': 'util-linux',
    'prlimit': 'util-linux',
    'setpriv': 'util-linux',
    'blockdev': 'util-linux',
    'cp': 'coreutils',
    'dd': 'coreutils',
    'shred': 'coreutils',
    'vgs': 'lvm2',
    'lvcreate': 'lvm2',
    'lvremove': 'lvm2',
    'lvs': 'lvm2',
}

ENV = {'LC_ALL': 'C', 'LANG': 'C'}

#: Seconds a command asked to stop (SIGTERM) has before it is killed.
GRACE = 2.0

#: Limits modern Nova puts on ``qemu-img info``: 1 GiB address space, 30 s CPU.
QEMU_IMG_LIMITS = (f'--as={1 * units.Gi}', '--cpu=30')


def require(tool):
    """Return the path of ``tool`` or raise ToolMissing naming its package."""
    path = shutil.which(tool)
    if path is None:
        package = PACKAGES.get(tool, tool)
        raise exception.ToolMissing(
            f'{tool} not found on PATH: install the Debian package {package}')
    return path


def _wrapped(cmd, prlimit=None):
    """``cmd`` under setpriv (and prlimit): the argv to execute."""
    argv = cmd
    if prlimit:
        argv = (require('prlimit'), *prlimit, '--', *argv)
    return (require('setpriv'), '--pdeathsig', 'KILL', '--', *argv)


#: how a tool (through strerror) says that it hit ENOSPC
ENOSPC = os.strerror(errno.ENOSPC)


def _failure(cmd, exit_code, stderr):
    """ToolFailed with the tool's last error line; ToolOutOfSpace (also a
    NoSpace) when the tool said its filesystem was full."""
    lines = [ln.strip() for ln in (stderr or '').splitlines() if ln.strip()]
    detail = lines[-1] if lines else 'no error output'
    cls = (exception.ToolOutOfSpace if ENOSPC in (stderr or '')
           else exception.ToolFailed)
    return cls(
        f'{" ".join(cmd)} failed with exit status {exit_code}: {detail}')


def _popen(argv):
    return subprocess.Popen(argv, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, **ENV})


def _stop(proc, cmd):
    """End ``proc`` for a stop request; raise Stopped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    stop.check(cmd[0])


def _read_all(proc, cmd):
    """(stdout, stderr) of ``proc`` until both end, a stop request seen
    within POLL."""
    chunks = {proc.stdout: [], proc.stderr: []}
    with selectors.DefaultSelector() as sel:
        for stream in chunks:
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            if stop.requested():
                _stop(proc, cmd)
            for key, _ in sel.select(stop.POLL):
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fileobj].append(data)
                else:
                    sel.unregister(key.fileobj)
    return b''.join(chunks[proc.stdout]), b''.join(chunks[proc.stderr])


def _exited(proc, cmd):
    """Wait for ``proc`` to exit, a stop request seen within POLL.

    Its pidfd says the moment it exits; ``Popen.wait`` with a timeout would
    look at it after sleeps of 1, 2, 4... ms instead (~1.5 ms a command).
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # a kernel without pidfds (before 5.3)
        pidfd = None
    try:
        while True:
            if pidfd is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    return proc.wait(stop.POLL)
            elif select.select([pidfd], [], [], stop.POLL)[0]:
                return proc.wait()
            if stop.requested():
                _stop(proc, cmd)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _execute(argv, cmd):
    """(exit status, stdout, stderr) of ``argv``, output decoded; a stop
    request ends the command within POLL."""
    with _popen(argv) as proc:
        out, err = _read_all(proc, cmd)
        _exited(proc, cmd)
        if proc.returncode and stop.requested():
            stop.check(cmd[0])
        return (proc.returncode,
                out.decode('utf-8', 'surrogateescape'),
                err.decode('utf-8', 'surrogateescape'))


def _debug(cmd, started, code):
    """A --debug line per command: what ran, how long, its exit status
    (secrets are masked by the debug log's filter)."""
    if LOG.isEnabledFor(logging.DEBUG):
        LOG.debug('ran %s: exit status %s in %.2fs', shlex.join(cmd), code,
                  time.monotonic() - started)


def run(*cmd, ok=(0,), prlimit=None):
    """Run ``cmd``; return (exit_code, stdout, stderr); raise unless in ``ok``.

    0 is always accepted; ``ok=None`` accepts every exit status (Nova's
    "ignore failures" steps), never a death by a signal. ``prlimit``:
    ``prlimit`` options (such as QEMU_IMG_LIMITS) to run under.
    """
    require(cmd[0])
    started = time.monotonic()
    try:
        code, out, err = _execute(_wrapped(cmd, prlimit), cmd)
    except OSError as e:
        raise exception.ToolFailed(f'{cmd[0]} could not run: {e}') from None
    _debug(cmd, started, code)
    if code == 0 or (code > 0 and (ok is None or code in ok)):
        return code, out, err
    raise _failure(cmd, code, err)


_PROGRESS = re.compile(r'\((\d+(?:\.\d+)?)/100%\)')


def run_with_progress(*cmd, on_progress):
    """Run a ``qemu-img ... -p`` command, calling on_progress(0.0..1.0).

    processutils collects output only at exit, so this is the one place a
    process is read while it runs. qemu-img prints a line each percent,
    which may take long: the stop request is seen between two, every POLL.
    """
    require(cmd[0])
    started = time.monotonic()
    with _popen(_wrapped(cmd)) as proc:
        buf = b''
        while True:
            if stop.requested():
                _stop(proc, cmd)
            if not select.select([proc.stdout], [], [], stop.POLL)[0]:
                continue
            chunk = proc.stdout.read1(4096)
            if not chunk:
                break
            buf = (buf + chunk)[-256:]
            found = _PROGRESS.findall(buf.decode('ascii', 'replace'))
            if found:
                on_progress(float(found[-1]) / 100.0)
        err = proc.stderr.read().decode('utf-8', 'replace')
        _debug(cmd, started, proc.wait())
        if proc.returncode != 0:
            stop.check(cmd[0])
            raise _failure(cmd, proc.returncode, err)


def qemu_img_info_argv(path, fmt=None):
    """The ``qemu-img info`` command line :func:`qemu_img_info` runs."""
    cmd = ['qemu-img', 'info', '--force-share', '--output=json']
    if fmt:
        cmd += ['-f', fmt]
    return cmd + [path]


def qemu_img_info(path, fmt=None):
    """``qemu-img info --output=json`` under prlimit, parsed by oslo.utils."""
    _, out, _ = run(*qemu_img_info_argv(path, fmt), prlimit=QEMU_IMG_LIMITS)
    return imageutils.QemuImgInfo(out, format='json')
