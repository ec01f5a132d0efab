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
A refusal gives modern Nova's reason first (nova/virt/images.py@33.0.2),
then what imagepipe found.

For today's Nova :class:`DeepInspect` is the same inspection with the
``[workarounds] disable_deep_image_inspection`` switch
(nova/virt/images.py@33.0.2, fetch_to_raw). A cached base is checked again
by :mod:`imagepipe.tasks.recheck` and against the flavor by
:mod:`imagepipe.tasks.flavor`.
"""

import json
import os

from oslo_utils.imageutils import format_inspector

from imagepipe import tools
from imagepipe.tasks import content
from imagepipe.tasks import formats
from imagepipe.tasks.contract import ImageTask
from imagepipe.tasks.formats import MISMATCH
from imagepipe.tasks.formats import SAFETY
from imagepipe.tasks.formats import UNSUPPORTED

#: Formats Glance may declare that carry a raw disk (Nova exempts them from
#: the content check).
AMI_FORMATS = ('ami', 'aki', 'ari')

#: The name qemu-img gives a format the inspector names differently.
QEMU_NAME = {'gpt': 'raw', 'iso': 'raw', 'vhd': 'vpc'}


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
    """Inspect as Nova 29.1.0+ does in fetch_to_raw.

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
        info = formats.qemu_info(path)
    else:
        path = part
        declared = expected_format or fetched.get('disk_format')
        info = _check_fresh(path, declared, vmdk_allowed_types, deep)
    if max_size and info.virtual_size > max_size:
        raise formats.too_large(path, info.virtual_size, max_size)
    return {'cached': cached, 'path': path,
            'format': info.file_format, 'virtual_size': info.virtual_size,
            'cluster_size': info.cluster_size}


def _check_fresh(path, declared, vmdk_allowed_types, deep=True):
    """Every check on a fresh download; returns its ``qemu-img info``.

    ``deep`` False skips the format inspector and the format agreements.
    """
    detected = _detect(path, declared) if deep else None
    small = content.too_small(os.path.getsize(path))
    if small:
        raise formats.unacceptable(path, f'too small: {small}')
    info = formats.qemu_info(path)
    fmt = info.file_format
    if deep and fmt != QEMU_NAME.get(detected, detected):
        raise formats.unacceptable(
            path, f'{MISMATCH}: qemu-img sees {fmt}, the format inspector '
            f'{detected}')
    if info.backing_file:
        raise formats.unacceptable(
            path, f'fmt={fmt} backed by: {info.backing_file}')
    data = (info.format_specific or {}).get('data') or {}
    if data.get('data-file'):
        raise formats.unacceptable(
            path, f'fmt={fmt} has data-file: {data["data-file"]}')
    if fmt == 'vmdk':
        formats.check_vmdk_type(path, data.get('create-type'),
                                vmdk_allowed_types)
    if fmt == 'qcow2':
        _check_qcow2(path)
    elif fmt == 'raw' and content.first_data(path) is None:
        raise formats.unacceptable(path, 'no content: every byte is zero')
    return info


def _detect(path, declared):
    """The inspector's format for ``path``, safety-checked and as declared."""
    try:
        detected = formats.inspector_format(path)
    except format_inspector.SafetyCheckFailed as e:
        raise formats.unacceptable(path, f'{SAFETY} '
                            f'({", ".join(sorted(e.failures))})') from None
    except format_inspector.ImageFormatError as e:
        raise formats.unacceptable(path, f'{MISMATCH}: {e}') from None
    if not declared or declared in AMI_FORMATS:
        return detected
    if format_inspector.get_inspector(declared) is None:
        raise formats.unacceptable(
            path, f'{UNSUPPORTED}: disk_format {declared} has no inspector')
    if detected != declared and (declared, detected) != ('raw', 'gpt'):
        raise formats.unacceptable(
            path, f'{UNSUPPORTED}: content is {detected} but the disk_format '
            f'is {declared}')
    return detected


def _check_qcow2(path):
    code, out, err = tools.run(*check_argv(path), ok=None,
                               prlimit=tools.QEMU_IMG_LIMITS)
    if code:
        raise formats.unacceptable(
            path, f'qemu-img check exit status {code}: {_findings(out, err)}')
    try:
        content.check_qcow2_extent(
            path, json.loads(out).get('image-end-offset'))
    except content.Truncated as e:
        raise formats.unacceptable(path, f'truncated: {e}') from None


def _findings(out, err):
    """What ``qemu-img check --output=json`` found, in a few words."""
    try:
        report = json.loads(out)
    except ValueError:
        lines = err.strip().splitlines()
        return lines[-1] if lines else 'no output'
    return ', '.join(f'{report.get(key, 0)} {key}'
                     for key in ('corruptions', 'leaks', 'check-errors'))
