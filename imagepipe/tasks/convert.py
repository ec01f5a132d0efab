"""ConvertToRaw: turn a non-raw download into a raw file when asked to.

Nova converted with ``qemu-img convert -O raw $hex.part $hex.converted``
(no ``-f``: the format was probed from the file), removed the part, then
insisted that ``qemu-img info`` of the result says raw. imagepipe pins the
format the inspection found (``-f``), writes with ``-t none`` so nothing of
the output stays in the page cache (``-t writeback`` where O_DIRECT is
refused, e.g. tmpfs), and shows progress.
"""

import errno
import os

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import disk_ops as disk_ops_slots
from imagepipe.tasks import inspect
from imagepipe.tasks import safefs
from imagepipe.tasks.contract import ImageTask
from imagepipe.tasks.contract import flush_and_drop


def convert_argv(fmt, part, converted, cache='none', pin_format=True):
    """The ``qemu-img convert`` command line; ``-f`` only when pinned.

    ``-W`` lets the writes of qemu-img's coroutines reach the raw output
    out of order: 340 -> 280 ms for the 0.5 GB of data of the benchmarks'
    2 GiB qcow2 with ``-t none`` (median of 5, isolated); the bytes are the
    same, and the output is flushed before it is published either way.
    """
    argv = ['qemu-img', 'convert', '-t', cache, '-O', 'raw']
    if pin_format:
        argv += ['-f', fmt]
    return argv + ['-W', '-p', part, converted]


def supports_direct_io(probe):
    """Whether a file at ``probe`` can be opened with O_DIRECT."""
    try:
        os.close(safefs.create(probe, 0o600, os.O_DIRECT))
    except safefs.FileError as e:
        if e.errno != errno.EINVAL:
            raise
        safefs.remove(probe)
        return False
    safefs.remove(probe)
    return True


class ConvertToRaw(ImageTask):
    """Convert to raw (force_raw and not raw yet); result names the file."""

    source = 'images.fetch_to_raw'

    def work(self, image, part, converted, base, force_raw, pin_format,
             disk_ops=None):
        if image['cached'] or image['format'] == 'raw' or not force_raw:
            return {'converted': False, 'path': image['path'],
                    'format': image['format']}
        done = safefs.existing_file(converted,
                                    'use it as the converted image')
        if inspect.published_meanwhile(part, base) and not done:
            # another run resumed first and published this image
            return {'converted': False, 'path': base,
                    'format': tools.qemu_img_info(base).file_format}
        # The part is removed only after a finished, flushed convert:
        # without it, an existing output is an earlier attempt's work.
        if os.path.exists(part) or not done:
            self._convert(image['format'], part, converted, pin_format,
                          disk_ops)
        fmt = tools.qemu_img_info(converted).file_format
        if fmt != 'raw':
            raise exception.ImageUnacceptable(
                f'image {converted} is unacceptable: Converted to raw, '
                f'but format is now {fmt}')
        return {'converted': True, 'path': converted, 'format': 'raw'}

    def _convert(self, fmt, part, converted, pin_format, disk_ops):
        cache = ('none' if supports_direct_io(converted + '.directio')
                 else 'writeback')
        argv = convert_argv(fmt, part, converted, cache, pin_format)
        # qemu-img writes into the file made here, keeping its mode
        os.close(safefs.create(converted, safefs.source_mode(part)))
        try:
            with disk_ops_slots.slot(disk_ops):
                tools.run_with_progress(*argv, on_progress=self.report)
        except exception.ToolOutOfSpace:
            raise exception.NoSpace(
                f'{converted}: no space left on device (the filesystem of '
                f'{os.path.dirname(converted)} is full)') from None
        except exception.ToolFailed as e:
            raise exception.ImageUnacceptable(
                f'image {part} is unacceptable: unable to convert image to '
                f'raw: {e}') from None
        fd = safefs.open_existing(converted)
        try:
            flush_and_drop(fd)
        finally:
            os.close(fd)
        safefs.remove(part)

    def undo(self, result, converted, **kwargs):
        safefs.remove(converted)

    def preview(self, image, part, converted, force_raw, pin_format,
                nova_pins_format=False, disk_ops=None, **args):
        """``nova_pins_format`` (injected for the plan only): the release's
        Nova passed ``-f`` itself (Mitaka+, LP#1524274)."""
        if not force_raw:
            return {'notes': ['not converted: force_raw_images is off, the '
                              'image keeps its format']}
        notes = ['skipped when the image is raw already or came from the '
                 'cache',
                 '-t writeback instead of -t none where the directory '
                 'refuses O_DIRECT (tmpfs)',
                 f'{part} is removed once the output is flushed']
        notes.append("-W (out-of-order writes, the same bytes) is "
                     "imagepipe's")
        if pin_format and nova_pins_format:
            notes.append("-f is the inspected format, as Nova's own since "
                         'Mitaka (LP#1524274); -p (progress) is imagepipe\'s')
        notes += disk_ops_slots.note(disk_ops, 'the convert')
        return {'command': convert_argv(image['format'], part, converted,
                                        pin_format=pin_format),
                'creates': [converted], 'removes': [part], 'notes': notes}
