"""The one way imagepipe runs an external command.

Every command runs through oslo.concurrency's processutils with ``LC_ALL=C``
(so the output parsed below is never translated), a missing tool becomes one
error naming the Debian package to install, and ``qemu-img info`` runs under
the resource limits modern Nova uses against hostile images.

The limits are set by util-linux's ``prlimit`` command, which execs the tool
with them. processutils' own ``prlimit=`` starts a Python interpreter for
that, about 50 ms per ``qemu-img info`` where the command itself takes 1 ms.

Every command dies with imagepipe (``PR_SET_PDEATHSIG``): a run killed
alone would otherwise leave its ``qemu-img convert`` writing into the file
that the resumed run writes again.
"""

import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess

from oslo_concurrency import processutils
from oslo_utils import imageutils
from oslo_utils import units

from imagepipe import exception

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

#: Limits modern Nova puts on ``qemu-img info``: 1 GiB address space, 30 s CPU.
QEMU_IMG_LIMITS = (f'--as={1 * units.Gi}', '--cpu=30')


PR_SET_PDEATHSIG = 1

#: looked up before any fork: a child of a threaded process must not dlopen
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent):
    """In the child, before exec: SIGKILL when ``parent`` dies."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:   # it died before prctl took effect
        os._exit(1)


def _child_setup():
    return functools.partial(_die_with, os.getpid())


def require(tool):
    """Return the path of ``tool`` or raise ToolMissing naming its package."""
    path = shutil.which(tool)
    if path is None:
        package = PACKAGES.get(tool, tool)
        raise exception.ToolMissing(
            f'{tool} not found on PATH: install the Debian package {package}')
    return path


def _failure(cmd, exit_code, stderr):
    lines = [ln.strip() for ln in (stderr or '').splitlines() if ln.strip()]
    detail = lines[-1] if lines else 'no error output'
    return exception.ToolFailed(
        f'{" ".join(cmd)} failed with exit status {exit_code}: {detail}')


def run(*cmd, ok=(0,), prlimit=None):
    """Run ``cmd``; return (exit_code, stdout, stderr); raise unless in ``ok``.

    ``ok=None`` accepts every exit status (Nova's "ignore failures" steps).
    ``prlimit``: ``prlimit`` options (such as QEMU_IMG_LIMITS) to run under.
    """
    require(cmd[0])
    argv = cmd
    if prlimit:
        argv = (require('prlimit'), *prlimit, '--', *cmd)
    try:
        out, err = processutils.execute(
            *argv, env_variables={**os.environ, **ENV}, check_exit_code=True,
            preexec_fn=_child_setup())
        return 0, out, err
    except processutils.ProcessExecutionError as e:
        code = e.exit_code
        if code is None or code < 0:
            raise _failure(cmd, code, e.stderr) from None
        if ok is None or code in ok:
            return code, e.stdout or '', e.stderr or ''
        raise _failure(cmd, code, e.stderr) from None
    except OSError as e:
        raise exception.ToolFailed(f'{cmd[0]} could not run: {e}') from None


_PROGRESS = re.compile(r'\((\d+(?:\.\d+)?)/100%\)')


def run_with_progress(*cmd, on_progress):
    """Run a ``qemu-img ... -p`` command, calling on_progress(0.0..1.0).

    processutils collects output only at exit, so this is the one place a
    process is read while it runs.
    """
    require(cmd[0])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, **ENV},
                            preexec_fn=_child_setup())
    buf = b''
    while chunk := proc.stdout.read1(4096):
        buf = (buf + chunk)[-256:]
        found = _PROGRESS.findall(buf.decode('ascii', 'replace'))
        if found:
            on_progress(float(found[-1]) / 100.0)
    err = proc.stderr.read().decode('utf-8', 'replace')
    if proc.wait() != 0:
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
