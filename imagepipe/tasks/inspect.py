"""Inspect: decide whether a downloaded image may be used, before any convert.

Nova's ``fetch_to_raw`` asked ``qemu-img info`` for the format, refused a
backing file and (from Grizzly 2013.1.5) a virtual size larger than the
flavor's root disk. Modern Nova also runs oslo.utils' format inspector
(backing file, data-file, VMDK extents naming host files, QED, several formats
in one file), makes the content agree with Glance's ``disk_format`` and refuses
qcow2 data-files and unlisted VMDK create-types. imagepipe applies all of that
to every fresh download, and adds ``qemu-img check`` for qcow2: a truncated
qcow2 passes the inspector and converts "successfully" into a wrong disk.
"""

import json

from oslo_utils.imageutils import format_inspector

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import locks
from imagepipe.tasks.base import ImageTask

#: Formats Glance may declare that carry a raw disk (Nova exempts them from
#: the content check).
AMI_FORMATS = ('ami', 'aki', 'ari')

#: The name qemu-img gives a format the inspector names differently.
QEMU_NAME = {'gpt': 'raw', 'iso': 'raw', 'vhd': 'vpc'}

#: Nova's default ``[compute] vmdk_allowed_types``, used when none is given.
DEFAULT_VMDK_TYPES = ('streamOptimized', 'monolithicSparse')


def check_argv(path):
    """``qemu-img check`` of a qcow2 file."""
    return ['qemu-img', 'check', '--output=json', '-f', 'qcow2', path]


class Inspect(ImageTask):
    """Check the fetched image; result gives its format and virtual size."""

    source = 'images.fetch_to_raw'

    def execute(self, fetched, part, base, max_size, expected_format,
                vmdk_allowed_types, lock):
        with locks.held(lock):
            if fetched['cached']:
                path = base
                info = _qemu_info(path)
            else:
                path = part
                declared = expected_format or fetched.get('disk_format')
                info = _check_fresh(path, declared, vmdk_allowed_types)
            if max_size and info.virtual_size > max_size:
                raise _unacceptable(
                    path, f'image virtual size {info.virtual_size} bytes is '
                    f"larger than the flavor's root disk {max_size} bytes",
                    exception.FlavorDiskTooSmall)
            return {'cached': fetched['cached'], 'path': path,
                    'format': info.file_format,
                    'virtual_size': info.virtual_size,
                    'cluster_size': info.cluster_size}

    def revert(self, result, lock, **kwargs):
        locks.abandon(lock)

    def preview(self, part, base, max_size, **args):
        notes = [
            'oslo.utils format inspector first (in-process): no backing '
            'file, no data-file, no VMDK extent naming a host file, no QED, '
            'one format only, the declared disk_format',
            'then qemu-img info: no backing file, no qcow2 data-file, an '
            'allowed VMDK create-type, the same format as the inspector; '
            'qemu-img check only for qcow2',
            f'a cached {base} is only measured with qemu-img info',
        ]
        if max_size:
            notes.append(f'rejected when the virtual size exceeds {max_size}'
                         ' bytes (before any conversion)')
        return {'command': [tools.qemu_img_info_argv(part),
                            check_argv(part)],
                'notes': notes}


def _unacceptable(path, reason, error=exception.ImageUnacceptable):
    return error(f'image {path} is unacceptable: {reason}')


def _check_fresh(path, declared, vmdk_allowed_types):
    """Every check on a fresh download; returns its ``qemu-img info``."""
    detected = _detect(path, declared)
    info = _qemu_info(path)
    fmt = info.file_format
    if fmt != QEMU_NAME.get(detected, detected):
        raise _unacceptable(
            path, f'qemu-img sees {fmt}, the format inspector {detected}')
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
    return info


def _detect(path, declared):
    """The inspector's format for ``path``, safety-checked and as declared."""
    try:
        inspector = format_inspector.detect_file_format(path)
        if inspector is None:
            raise format_inspector.ImageFormatError('no format found')
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as e:
        raise _unacceptable(path, 'image does not pass safety check '
                            f'({", ".join(sorted(e.failures))})') from None
    except format_inspector.ImageFormatError as e:
        raise _unacceptable(
            path, f'image content does not match its format: {e}') from None
    detected = str(inspector)
    if not declared or declared in AMI_FORMATS:
        return detected
    if format_inspector.get_inspector(declared) is None:
        raise _unacceptable(path, f'disk_format {declared} has no inspector')
    if detected != declared and (declared, detected) != ('raw', 'gpt'):
        raise _unacceptable(
            path, f'content is {detected} but the disk_format is {declared}')
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


def _findings(out, err):
    """What ``qemu-img check --output=json`` found, in a few words."""
    try:
        report = json.loads(out)
    except ValueError:
        lines = err.strip().splitlines()
        return lines[-1] if lines else 'no output'
    return ', '.join(f'{report.get(key, 0)} {key}'
                     for key in ('corruptions', 'leaks', 'check-errors'))
