"""What an image's format is, as oslo.utils' format inspector and qemu-img
see it, the one line that refuses an image, and the one that refuses it for
the flavor's root disk.

The download inspection (:mod:`imagepipe.tasks.inspect`) and the second
look at a cached base (:mod:`imagepipe.tasks.recheck`) ask both the same
way; the byte-level checks are :mod:`imagepipe.tasks.content`'s. What the
first bytes of a download say (:class:`HeaderSize`) lets the fetch stop an
image too large for the flavor before the rest arrives.
"""

from oslo_utils import units
from oslo_utils.imageutils import format_inspector

from imagepipe import exception
from imagepipe import tools

#: Nova's default ``[compute] vmdk_allowed_types``, used when none is given.
DEFAULT_VMDK_TYPES = ('streamOptimized', 'monolithicSparse')

#: Modern Nova's ImageUnacceptable reasons (nova/virt/images.py@33.0.2).
#: A claimed format without an inspector and content contradicting Glance's
#: disk_format are raised inside the try block whose catch-all rewords them.
SAFETY = 'Image does not pass safety check'
MISMATCH = 'Image content does not match disk_format'
UNSUPPORTED = 'Image not in a supported format'


def unacceptable(path, reason, error=exception.ImageUnacceptable):
    return error(f'image {path} is unacceptable: {reason}')


def too_large(path, virtual_size, root_size,
              error=exception.FlavorDiskTooSmall):
    """The refusal of an image larger than the flavor's root disk,
    wherever it is found: Nova's words, both sizes in GiB and the smallest
    ``--root-gb`` that holds the image."""
    shown = [f'{n / units.Gi:.1f} GiB' for n in (virtual_size, root_size)]
    if shown[0] == shown[1]:
        shown = [f'{s} ({n} bytes)'
                 for s, n in zip(shown, (virtual_size, root_size))]
    return unacceptable(
        path, "Flavor's disk is too small for requested image: virtual "
        f'size {shown[0]} exceeds root disk {shown[1]}: use --root-gb '
        f'{-(-virtual_size // units.Gi)} or more', error)


def inspector_format(path):
    """The format oslo.utils' inspector finds in ``path``, safety-checked.

    Raises the inspector's SafetyCheckFailed or ImageFormatError; any other
    error of the inspector on this untrusted file (it has raised
    AttributeError on text files) is an ImageFormatError too.
    """
    try:
        inspector = format_inspector.detect_file_format(path)
        if inspector is None:
            raise format_inspector.ImageFormatError('no format found')
        inspector.safety_check()
    except (format_inspector.SafetyCheckFailed,
            format_inspector.ImageFormatError):
        raise
    except Exception as e:
        raise format_inspector.ImageFormatError(
            f'the format inspector failed on it ({type(e).__name__}: {e})'
        ) from None
    return str(inspector)


def qemu_info(path):
    info = tools.qemu_img_info(path)
    if not info.file_format:
        raise unacceptable(path, "'qemu-img info' parsing failed.")
    return info


def check_vmdk_type(path, create_type, allowed):
    if allowed is None:
        allowed = DEFAULT_VMDK_TYPES
    if not create_type:
        raise unacceptable(path, 'Unable to determine VMDK create-type')
    if create_type not in allowed:
        raise unacceptable(
            path, f'Invalid VMDK create-type specified: {create_type}')


#: Bytes of a download :class:`HeaderSize` looks at, at most: the inspector
#: knows every format it parses well within (VHDX, the farthest, at 4 MiB).
HEADER_BYTES = 8 * units.Mi

#: Formats whose header gives the virtual size qemu-img reports. Not VHD:
#: qemu-img takes a VHD's size from its CHS geometry unless qemu or a few
#: known tools made it, which the footer's size may exceed.
HEADER_SIZED = ('qcow2', 'vmdk', 'vhdx', 'vdi')

#: Formats qemu-img reads as raw: the virtual size is the file's length.
RAW_SIZED = ('raw', 'gpt', 'iso')


class _Handed:
    """The chunk :class:`HeaderSize` hands its wrapper to read next."""

    chunk = b''

    def read(self, size):
        return self.chunk


class HeaderSize:
    """The virtual size a download's first bytes declare, as they arrive.

    Chunks go through oslo.utils' InspectWrapper until it names the format,
    or HEADER_BYTES went by, or the content puzzles it (several formats,
    an inspector's error): ``virtual_size`` is then the header's, the
    ``length`` of the whole file for a raw image, or None (not known so
    early: the inspection of the whole file decides). Only a first look,
    for stopping early: the inspection judges the image.
    """

    def __init__(self, length):
        self._length = length
        self._handed = _Handed()
        self._wrapper = format_inspector.InspectWrapper(self._handed)
        self._seen = 0
        self.done = False
        self.virtual_size = None

    def eat(self, chunk):
        """Look at the next ``chunk``; sets ``done`` once it has decided."""
        self._handed.chunk = chunk
        self._seen += len(chunk)
        try:
            self._wrapper.read(len(chunk))
            found = self._wrapper.format
            if found is None:
                self.done = self._seen >= HEADER_BYTES
                return
            name = str(found)
            if name in HEADER_SIZED:
                self.virtual_size = found.virtual_size or None
            elif name in RAW_SIZED:
                self.virtual_size = self._length
        except Exception:  # untrusted bytes: the inspection judges them
            self.virtual_size = None
        self.done = True
