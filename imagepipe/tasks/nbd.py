"""Growing the filesystem inside a qcow2 image through an nbd device.

Havana's ``resize_fs_using_block_device``: a qcow2 file cannot be handed to
e2fsck, so Nova exported it as ``/dev/nbdN`` with qemu-nbd, ran e2fsck and
resize2fs on the device as root, and detached it.
"""

import os
import re
import time

from oslo_concurrency import lockutils
from oslo_log import log as logging

from imagepipe import exception
from imagepipe.tasks import contract
from imagepipe.tasks import resize as grow

LOG = logging.getLogger(__name__)

#: How long Nova waited for a connected device to show its pid (timeout_nbd).
ATTACH_TIMEOUT = 10.0

STRICT_NOTES = {
    False: 'exit codes ignored (Havana)',
    True: 'resize2fs only if e2fsck exits 0, 1 or 2 (Icehouse+)',
}

_NBD_NAME = re.compile(r'nbd(\d+)$')

NO_NBD = ('no /dev/nbd* device: load the nbd kernel module (modprobe nbd) '
          'to resize filesystems inside qcow2 images')


def sys_block(nbd_root):
    """``/sys/block`` of the root tree whose ``/dev`` is ``nbd_root``."""
    root = os.path.dirname(os.path.normpath(nbd_root))
    return os.path.join(root, 'sys', 'block')


def _pid_file(device, nbd_root):
    return os.path.join(sys_block(nbd_root), os.path.basename(device), 'pid')


def _devices(nbd_root):
    """The nbd device nodes under ``nbd_root``, in numeric order."""
    try:
        names = os.listdir(nbd_root)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        match = _NBD_NAME.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(nbd_root, name)))
    return [path for _, path in sorted(found)]


def _free_device(nbd_root):
    """A device nothing is connected to, None if all are busy."""
    devices = _devices(nbd_root)
    if not devices:
        raise exception.NotSupported(NO_NBD)
    for device in devices:
        if not os.path.exists(_pid_file(device, nbd_root)):
            return device
    return None


def _wait_attached(device, nbd_root):
    pid = _pid_file(device, nbd_root)
    deadline = time.monotonic() + ATTACH_TIMEOUT
    while not os.path.exists(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def attach_argv(device, path):
    return ['qemu-nbd', '-c', device, path]


def detach_argv(device):
    return ['qemu-nbd', '-d', device]


def _resize_through(path, strict, nbd_root):
    with lockutils.lock('nbd-allocation-lock'):
        device = _free_device(nbd_root)
        if device is None:
            return grow.fs_result(False, f'every nbd device under {nbd_root} '
                                  'is busy, not resized')
        attached = grow.exit_status(*attach_argv(device, path))
    if attached != 0:
        return grow.fs_result(False, f'qemu-nbd -c exited {attached}, '
                              'not resized')
    try:
        if not _wait_attached(device, nbd_root):
            return grow.fs_result(False, f'{device} did not connect in '
                                  f'{ATTACH_TIMEOUT:g} s, not resized')
        return grow.grow_filesystem(device, strict)
    finally:
        if grow.exit_status(*detach_argv(device)) != 0:
            LOG.warning('qemu-nbd -d %s failed: the device stays connected',
                        device)


class ResizeFsBlockDevice(contract.ImageTask):
    """e2fsck + resize2fs on the qcow2 image exported as ``/dev/nbdN``.

    Runs only when the image was grown. ``strict`` applies the Icehouse
    exit-code rule (Havana ignored both codes). ``nbd_root`` is the ``/dev``
    to look in; the pid files are read from the ``sys/block`` beside it, so
    a test can point both at a temporary tree.
    """

    source = 'disk.api.extend (resize_fs_using_block_device)'
    notes = ('Nova first test-mounted the image and skipped disks without a '
             'filesystem directly on them; imagepipe goes straight to '
             'e2fsck, which fails on those disks with the same outcome',
             'the device is detached in a finally, as from Icehouse on')

    def work(self, path, strict, nbd_root, resize):
        if not resize['resized']:
            return grow.not_resized()
        return _resize_through(path, strict, nbd_root)

    def preview(self, path, strict, nbd_root, resize, **_):
        device = os.path.join(nbd_root, '<free nbdN>')
        return {'command': [attach_argv(device, path),
                            *grow.fs_argvs(device, gate=False),
                            detach_argv(device)],
                'notes': [f'only when {resize["resized"]} is true',
                          STRICT_NOTES[bool(strict)]]}
