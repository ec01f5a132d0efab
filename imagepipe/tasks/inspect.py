"""Inspect: decide whether a downloaded image may be used, before any convert.

Nova's ``fetch_to_raw`` asked ``qemu-img info`` for the format, refused a
backing file and (from Grizzly 2013.1.5) a virtual size larger than the
flavor's root disk. Modern Nova also runs oslo.utils' format inspector
(backing file, data-file, VMDK extents naming host files, QED, several formats
in one file), makes the content agree with Glance's ``disk_format`` and refuses
qcow2 data-files and unlisted VMDK create-types. imagepipe applies all of that
to every fresh download, and adds what :mod:`imagepipe.tasks.content` checks
(at least one sector, some data, every qcow2 cluster inside the file, after
``qemu-img check``): a truncated qcow2 passes the inspector and converts
"successfully" into a wrong disk.
A refusal gives modern Nova's reason first (nova/virt/images.py 33.0.2), then
what imagepipe found.

For today's Nova (nova-modern.md 2.3, 2.4) :class:`DeepInspect` is the same
inspection with the ``[workarounds] disable_deep_image_inspection`` switch,
:class:`InspectBase` and :class:`RecheckBase` check a cached base again before
a qcow2 overlay is laid on it, and :class:`VerifyBaseSize` compares the cached
base with the flavor once it is fetched.
"""

import errno
import json
import os

from oslo_utils.imageutils import format_inspector

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import content
from imagepipe.tasks.contract import ImageTask

#: Formats Glance may declare that carry a raw disk (Nova exempts them from
#: the content check).
AMI_FORMATS = ('ami', 'aki', 'ari')

#: The name qemu-img gives a format the inspector names differently.
QEMU_NAME = {'gpt': 'raw', 'iso': 'raw', 'vhd': 'vpc'}

#: Nova's default ``[compute] vmdk_allowed_types``, used when none is given.
DEFAULT_VMDK_TYPES = ('streamOptimized', 'monolithicSparse')

#: Modern Nova's ImageUnacceptable reasons (nova/virt/images.py 33.0.2).
#: A claimed format without an inspector and content contradicting Glance's
#: disk_format are raised inside the try block whose catch-all rewords them.
SAFETY = 'Image does not pass safety check'
MISMATCH = 'Image content does not match disk_format'
UNSUPPORTED = 'Image not in a supported format'


class InvalidDiskInfo(exception.ImageUnacceptable):
    """Nova's InvalidDiskInfo: a cached base failed its safety checks."""


class FlavorDiskSmallerThanImage(exception.FlavorDiskTooSmall):
    """The cached base is larger than the flavor's root disk (Newton+)."""


def published_meanwhile(temp, base):
    """``temp`` is gone and ``base`` is there: another run finished it."""
    return not os.path.exists(temp) and os.path.exists(base)


def check_argv(path):
    """``qemu-img check`` of a qcow2 file."""
    return ['qemu-img', 'check', '--output=json', '-f', 'qcow2', path]


class Inspect(ImageTask):
    """Check the fetched image; result gives its format and virtual size."""

    source = 'images.fetch_to_raw'

    def work(self, fetched, part, base, max_size, expected_format,
             vmdk_allowed_types):
        return _inspect(fetched, part, base, max_size, expected_format,
                        vmdk_allowed_types, deep=True)


    def preview(self, part, base, max_size, **args):
        notes = [INSPECTOR_NOTE, QEMU_NOTE, CONTENT_NOTE,
                 f'a cached {base} is only measured with qemu-img info']
        if max_size:
            notes.append(f'rejected when the virtual size exceeds {max_size}'
                         ' bytes (before any conversion)')
        return {'command': [tools.qemu_img_info_argv(part),
                            check_argv(part)],
                'notes': notes}


INSPECTOR_NOTE = (
    'oslo.utils format inspector first (in-process): no backing file, no '
    'data-file, no VMDK extent naming a host file, no QED, one format only, '
    'the declared disk_format')
QEMU_NOTE = (
    'then qemu-img info: no backing file, no qcow2 data-file, an allowed '
    'VMDK create-type, the same format as the inspector; qemu-img check '
    'only for qcow2')
CONTENT_NOTE = (
    'refused: less than one 512-byte sector, a raw image of zeros only, a '
    'qcow2 whose tables map clusters beyond the end of the file')


class DeepInspect(Inspect):
    """Inspect as Nova 29.1.0+ does in fetch_to_raw (nova-modern.md 2.3).

    ``deep`` False is ``[workarounds] disable_deep_image_inspection``: no
    format inspector and no agreement with Glance's disk_format or between
    inspector and qemu-img, while qemu-img info still refuses backing files,
    data-files and unlisted VMDK create-types (imagepipe's qemu-img check of
    a qcow2 stays).
    """

    def work(self, fetched, part, base, max_size, expected_format,
             vmdk_allowed_types, deep):
        return _inspect(fetched, part, base, max_size, expected_format,
                        vmdk_allowed_types, deep)

    def preview(self, part, base, max_size, deep, **args):
        shown = super().preview(part=part, base=base, max_size=max_size,
                                **args)
        if not deep:
            shown['notes'][:2] = [
                'disable_deep_image_inspection: no format inspector and no '
                'agreement with the disk_format (Nova 29.0.0 behaviour)',
                'qemu-img info: no backing file, no qcow2 data-file, an '
                'allowed VMDK create-type; qemu-img check only for qcow2']
        return shown


def _inspect(fetched, part, base, max_size, expected_format,
             vmdk_allowed_types, deep):
    """A cached base is only measured; a fresh download checked first.

    A download gone while the base exists was published by another run
    resumed before this one (both used the same ``.part``): the base is
    then this run's cached image.
    """
    cached = fetched['cached'] or published_meanwhile(part, base)
    if cached:
        path = base
        info = _qemu_info(path)
    else:
        path = part
        declared = expected_format or fetched.get('disk_format')
        info = _check_fresh(path, declared, vmdk_allowed_types, deep)
    if max_size and info.virtual_size > max_size:
        raise _unacceptable(
            path, f'image virtual size {info.virtual_size} bytes is '
            f"larger than the flavor's root disk {max_size} bytes",
            exception.FlavorDiskTooSmall)
    return {'cached': cached, 'path': path,
            'format': info.file_format, 'virtual_size': info.virtual_size,
            'cluster_size': info.cluster_size}


class InspectBase(ImageTask):
    """The format inspector on the cached base (Qcow2 backend, 29.1.0+).

    Nova repeats it before every overlay, so a base cached by an older Nova
    (or before a new check existed) is checked too. ``qemu_checks`` adds what
    Nova's create_image asks qemu-img about the base, under the copy lock:
    an allowed VMDK create-type, no backing file, no data-file. ``inspector``
    False (the workaround) leaves only those.
    """

    source = 'imagebackend.Qcow2.create_image'

    def work(self, base, inspector, qemu_checks, vmdk_allowed_types):
        found = _inspect_base(base) if inspector else None
        info = _qemu_info(base)
        if qemu_checks:
            _check_base_info(base, info, vmdk_allowed_types)
        return {'path': base, 'inspector': found,
                'format': info.file_format,
                'virtual_size': info.virtual_size,
                'cluster_size': info.cluster_size}


    def preview(self, base, inspector, qemu_checks, **_):
        notes = []
        if inspector:
            notes.append(f'oslo.utils format inspector on {base} '
                         '(in-process): a failed safety check is '
                         '"Disk info file is invalid: Base image failed '
                         'safety check"')
        else:
            notes.append('disable_deep_image_inspection: no format '
                         'inspector on the base')
        if qemu_checks:
            notes.append('qemu-img info of the base: an allowed VMDK '
                         'create-type, no backing file, no data-file')
        return {'command': ([tools.qemu_img_info_argv(base)] if qemu_checks
                            else None),
                'notes': notes}


class RecheckBase(InspectBase):
    """InspectBase again, inside the copy lock, as create_image runs it."""

    source = 'libvirt.utils.create_image'


def _inspect_base(base):
    """The inspector's format of a cached base; InvalidDiskInfo if unsafe."""
    try:
        detected = inspector_format(base)
    except format_inspector.SafetyCheckFailed as e:
        raise InvalidDiskInfo(
            f'Disk info file is invalid: Base image failed safety check: '
            f'{base} ({", ".join(sorted(e.failures))})') from None
    except format_inspector.ImageFormatError as e:
        # Not caught by Nova: the build is rescheduled.
        raise _unacceptable(base, f'{MISMATCH}: {e}') from None
    return detected


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


def _check_base_info(base, info, vmdk_allowed_types):
    if info.file_format == 'vmdk':
        data = (info.format_specific or {}).get('data') or {}
        _check_vmdk_type(base, data.get('create-type'), vmdk_allowed_types)
    data = (info.format_specific or {}).get('data') or {}
    if info.backing_file or data.get('data-file'):
        raise InvalidDiskInfo(
            'Disk info file is invalid: Base image failed safety check: '
            f'{base} has a backing file or a data-file')


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
        virtual = _qemu_info(base).virtual_size
        if size < virtual:
            raise FlavorDiskSmallerThanImage(
                "Flavor's disk is too small for requested image. Flavor "
                f'disk is {size} bytes, image is {virtual} bytes.')
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


def _unacceptable(path, reason, error=exception.ImageUnacceptable):
    return error(f'image {path} is unacceptable: {reason}')


def _check_fresh(path, declared, vmdk_allowed_types, deep=True):
    """Every check on a fresh download; returns its ``qemu-img info``.

    ``deep`` False skips the format inspector and the format agreements.
    """
    detected = _detect(path, declared) if deep else None
    small = content.too_small(os.path.getsize(path))
    if small:
        raise _unacceptable(path, f'too small: {small}')
    info = _qemu_info(path)
    fmt = info.file_format
    if deep and fmt != QEMU_NAME.get(detected, detected):
        raise _unacceptable(
            path, f'{MISMATCH}: qemu-img sees {fmt}, the format inspector '
            f'{detected}')
    if info.backing_file:
        raise _unacceptable(
            path, f'fmt={fmt} backed by: {info.backing_file}')
    data = (info.format_specific or {}).get('data') or {}
    if data.get('data-file'):
        raise _unacceptable(
            path, f'fmt={fmt} has data-file: {data["data-file"]}')
    if fmt == 'vmdk':
        _check_vmdk_type(path, data.get('create-type'), vmdk_allowed_types)
    if fmt == 'qcow2':
        _check_qcow2(path)
    elif fmt == 'raw' and content.first_data(path) is None:
        raise _unacceptable(path, 'no content: every byte is zero')
    return info


def _detect(path, declared):
    """The inspector's format for ``path``, safety-checked and as declared."""
    try:
        detected = inspector_format(path)
    except format_inspector.SafetyCheckFailed as e:
        raise _unacceptable(path, f'{SAFETY} '
                            f'({", ".join(sorted(e.failures))})') from None
    except format_inspector.ImageFormatError as e:
        raise _unacceptable(path, f'{MISMATCH}: {e}') from None
    if not declared or declared in AMI_FORMATS:
        return detected
    if format_inspector.get_inspector(declared) is None:
        raise _unacceptable(
            path, f'{UNSUPPORTED}: disk_format {declared} has no inspector')
    if detected != declared and (declared, detected) != ('raw', 'gpt'):
        raise _unacceptable(
            path, f'{UNSUPPORTED}: content is {detected} but the disk_format '
            f'is {declared}')
    return detected


def _qemu_info(path):
    info = tools.qemu_img_info(path)
    if not info.file_format:
        raise _unacceptable(path, "'qemu-img info' parsing failed.")
    return info


def _check_vmdk_type(path, create_type, allowed):
    if allowed is None:
        allowed = DEFAULT_VMDK_TYPES
    if not create_type:
        raise _unacceptable(path, 'Unable to determine VMDK create-type')
    if create_type not in allowed:
        raise _unacceptable(
            path, f'Invalid VMDK create-type specified: {create_type}')


def _check_qcow2(path):
    code, out, err = tools.run(*check_argv(path), ok=None,
                               prlimit=tools.QEMU_IMG_LIMITS)
    if code:
        raise _unacceptable(
            path, f'qemu-img check exit status {code}: {_findings(out, err)}')
    try:
        content.check_qcow2_extent(
            path, json.loads(out).get('image-end-offset'))
    except content.Truncated as e:
        raise _unacceptable(path, f'truncated: {e}') from None


def _findings(out, err):
    """What ``qemu-img check --output=json`` found, in a few words."""
    try:
        report = json.loads(out)
    except ValueError:
        lines = err.strip().splitlines()
        return lines[-1] if lines else 'no output'
    return ', '.join(f'{report.get(key, 0)} {key}'
                     for key in ('corruptions', 'leaks', 'check-errors'))
