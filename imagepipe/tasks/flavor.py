"""The cached base against the flavor's root disk, once it is fetched.

Since Newton, Nova measures the image only once it is cached (and
converted): nova/virt/libvirt/imagebackend.py@33.0.2,
Image.verify_base_size.
"""

import errno
import os

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import formats
from imagepipe.tasks.contract import ImageTask


class FlavorDiskSmallerThanImage(exception.FlavorDiskTooSmall):
    """The cached base is larger than the flavor's root disk (Newton+)."""


class VerifyBaseSize(ImageTask):
    """The cached base against the flavor (Image.verify_base_size, Newton+).

    Modern Nova no longer measures the download before converting it: the
    base is fetched (and converted) first, then its virtual size compared
    with the flavor's root disk. The base stays cached when it is too large.
    ``touch`` first refreshes the base's mtime, as the Flat and Qcow2
    backends do so that the image cache manager sees it in use.
    """

    source = 'imagebackend.Image.verify_base_size'

    def work(self, base, size, touch):
        if touch:
            _touch(base)
        if size is None:
            return {'path': base, 'size': None, 'virtual_size': None}
        virtual = formats.qemu_info(base).virtual_size
        if size < virtual:
            raise formats.too_large(base, virtual, size,
                                    FlavorDiskSmallerThanImage)
        return {'path': base, 'size': size, 'virtual_size': virtual}

    def preview(self, base, size, touch, **_):
        notes = []
        if touch:
            notes.append(f'touches {base} (mtime: the image cache manager '
                         'sees it in use)')
        if size is None:
            notes.append('no flavor size (root_gb 0): nothing to compare')
            return {'command': None, 'notes': notes}
        notes.append(f'FlavorDiskSmallerThanImage when the virtual size of '
                     f'the base exceeds {size} bytes; the base stays cached')
        return {'command': tools.qemu_img_info_argv(base), 'notes': notes}


def _touch(path):
    """utime(path), ignoring EACCES/EPERM as Nova does (NFS)."""
    try:
        os.utime(path)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM):
            raise
