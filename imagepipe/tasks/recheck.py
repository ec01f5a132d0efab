"""A cached base checked again before a qcow2 overlay is laid on it.

Nova 29.1.0+ runs oslo.utils' format inspector on the cached base before
each overlay (nova/virt/libvirt/imagebackend.py@33.0.2, Qcow2.create_image),
so a base cached by an older Nova, or before a check existed, is checked
too; inside the copy lock it asks qemu-img about the base once more
(nova/virt/libvirt/utils.py@33.0.2, create_image).
"""

from oslo_utils.imageutils import format_inspector

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import formats
from imagepipe.tasks.contract import ImageTask
from imagepipe.tasks.formats import MISMATCH


class InvalidDiskInfo(exception.ImageUnacceptable):
    """Nova's InvalidDiskInfo: a cached base failed its safety checks."""


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
        info = formats.qemu_info(base)
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
        detected = formats.inspector_format(base)
    except format_inspector.SafetyCheckFailed as e:
        raise InvalidDiskInfo(
            f'Disk info file is invalid: Base image failed safety check: '
            f'{base} ({", ".join(sorted(e.failures))})') from None
    except format_inspector.ImageFormatError as e:
        # Not caught by Nova: the build is rescheduled.
        raise formats.unacceptable(base, f'{MISMATCH}: {e}') from None
    return detected


def _check_base_info(base, info, vmdk_allowed_types):
    if info.file_format == 'vmdk':
        data = (info.format_specific or {}).get('data') or {}
        formats.check_vmdk_type(base, data.get('create-type'),
                                vmdk_allowed_types)
    data = (info.format_specific or {}).get('data') or {}
    if info.backing_file or data.get('data-file'):
        raise InvalidDiskInfo(
            'Disk info file is invalid: Base image failed safety check: '
            f'{base} has a backing file or a data-file')
