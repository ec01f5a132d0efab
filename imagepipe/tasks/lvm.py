"""The instance disk as an LVM logical volume (images_type=lvm, Folsom+).

The base stays a file in the image cache; only the instance copy lives on
the volume group. Nova sized the LV at the flavor size or the image's
virtual size, whichever is larger, checked the group's free space, created
the LV and wrote the base into it. On failure it wiped and removed the LV.
"""

from oslo_log import log as logging
from oslo_utils import units
from taskflow.types import failure

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import disk_ops as disk_ops_slots
from imagepipe.tasks import formats
from imagepipe.tasks import resize

LOG = logging.getLogger(__name__)

#: The real extent a sparse LV starts with (Nova's constant).
SPARSE_EXTENT = 64 * units.Mi

VGS_COLUMNS = {
    'free': ['--units', 'b', '-o', 'vg_free'],                    # Folsom
    'size,free': ['--separator', '|', '--units', 'b',
                  '-o', 'vg_size,vg_free'],                       # Grizzly+
}

WRITE_NOTES = {
    'dd': "the base's bytes are written verbatim: a non-raw base gives an "
          'unbootable LV (LP#1075333)',
}

RETRY_NOTE = 'Nova ran vgs, lvcreate and lvremove up to 3 times'


def _choice(table, key, what):
    try:
        return table[key]
    except KeyError:
        raise exception.ConfigError(
            f'unknown {what} {key!r}: expected one of '
            f'{", ".join(table)}') from None


def vgs_argv(vg, columns):
    return ['vgs', '--noheadings', '--nosuffix',
            *_choice(VGS_COLUMNS, columns, 'vgs_columns'), vg]


def lvs_argv(vg, lv):
    return ['lvs', '--noheadings', '--nosuffix', '--units', 'b',
            '-o', 'lv_size', f'{vg}/{lv}']


def lvcreate_argv(vg, lv, size, sparse):
    if sparse:
        return ['lvcreate', '-L', f'{SPARSE_EXTENT}b',
                '--virtualsize', f'{size}b', '-n', lv, vg]
    return ['lvcreate', '-L', f'{size}b', '-n', lv, vg]


def wipe_argv(device, volume_clear, nbytes):
    """The revert's wipe command, None for volume_clear 'none'."""
    return _choice({
        'none': None,
        'zero': ['shred', '-n0', '-z', f'-s{nbytes}', device],
        'shred': ['shred', '-n3', f'-s{nbytes}', device],
    }, volume_clear, 'volume_clear')


def write_argv(base, device, method, fmt):
    return _choice({
        'dd': ['dd', f'if={base}', f'of={device}', 'bs=4M'],
        'convert': ['qemu-img', 'convert', '-t', 'none', '-O', 'raw',
                    '-f', fmt, base, device],
    }, method, 'volume write method')


def lv_size(size, virtual_size):
    """The LV is the flavor size when that is larger, else the image size."""
    return size if size and size > virtual_size else virtual_size


def _existing_size(vg, lv):
    """Size of LV ``vg/lv`` in bytes, None when there is no such LV."""
    code, out, _ = tools.run(*lvs_argv(vg, lv), ok=None)
    return int(out.strip()) if code == 0 else None


def _vg_free(vg, columns):
    _, out, _ = tools.run(*vgs_argv(vg, columns))
    return int(out.strip().split('|')[-1])


def _check_fits(path, size, virtual_size):
    if size is not None and size < virtual_size:
        raise formats.too_large(path, virtual_size, size)


def _check_free(vg, columns, needed, sparse):
    free = _vg_free(vg, columns)
    if needed <= free:
        return
    if not sparse:
        raise exception.NoSpace(
            f'Insufficient space on volume group {vg}: {needed} bytes '
            f'needed, {free} free')
    LOG.warning('volume group %s cannot hold the sparse volume at its '
                'full size: %d bytes virtual, %d free', vg, needed, free)


def _create(vg, lv, size, image, sparse, vgs_columns, check_size):
    virtual_size = image['virtual_size']
    if check_size:
        _check_fits(image['path'], size, virtual_size)
    needed = lv_size(size, virtual_size)
    existing = _existing_size(vg, lv)
    if existing is None:
        _check_free(vg, vgs_columns, needed, sparse)
        tools.run(*lvcreate_argv(vg, lv, needed, sparse))
    elif existing < needed:
        raise exception.ImagepipeError(
            f'logical volume {vg}/{lv} already exists with {existing} '
            f'bytes, {needed} needed')
    return needed


def clear(device, volume_clear, volume_clear_size):
    """Overwrite the LV at ``device`` per ``volume_clear`` (none, zero,
    shred), its first ``volume_clear_size`` MiB when that is not 0."""
    if volume_clear == 'none':
        return
    _, out, _ = tools.run('blockdev', '--getsize64', device)
    nbytes = int(out)
    if volume_clear_size:
        nbytes = min(nbytes, volume_clear_size * units.Mi)
    tools.run(*wipe_argv(device, volume_clear, nbytes))


def _planned_size(size, virtual_size):
    """lv_size for the plan, where the virtual size may be a placeholder."""
    if isinstance(virtual_size, int) or size is None:
        return lv_size(size, virtual_size)
    return f'<larger of {size} and {virtual_size.strip("<>")}>'


class CreateVolume(contract.ImageTask):
    """Create the LV that will hold the instance disk.

    An LV of at least the needed size found under the same name is taken as
    made by an earlier run of this task that crashed (lvcreate rounds up to
    whole extents); a smaller one is an error. Revert wipes the LV per
    ``volume_clear`` and removes it, unless execute failed: the only step
    that creates an LV comes last, so an LV found then is someone else's.
    """

    source = 'imagebackend.Lvm.create_image'
    notes = (RETRY_NOTE,)

    def work(self, vg, lv, device, size, sparse, vgs_columns, check_size,
             volume_clear, volume_clear_size, image):
        needed = _create(vg, lv, size, image, sparse, vgs_columns,
                         check_size)
        return {'device': device, 'size': needed,
                'resized': needed > image['virtual_size'], 'created': True}

    def undo(self, vg, lv, device, volume_clear, volume_clear_size,
               result, **_):
        if (isinstance(result, failure.Failure)
                or _existing_size(vg, lv) is None):
            return
        clear(device, volume_clear, volume_clear_size)
        tools.run('lvremove', '-f', device)

    def preview(self, vg, lv, device, size, sparse, vgs_columns, check_size,
                volume_clear, image, **_):
        needed = _planned_size(size, image['virtual_size'])
        notes = []
        if check_size:
            notes.append(f'FlavorDiskTooSmall if {size} bytes is below the '
                         "image's virtual size")
        wipe = wipe_argv(device, volume_clear, '<size of the LV>')
        undo = ' '.join(wipe) + ', then ' if wipe else ''
        notes.append(f'on revert: {undo}lvremove -f {device}')
        return {'command': [vgs_argv(vg, vgs_columns),
                            lvcreate_argv(vg, lv, needed, sparse)],
                'creates': [device], 'notes': notes}


class WriteVolume(contract.ImageTask):
    """Write the base into the LV: ``dd`` (Folsom) or ``qemu-img convert``.

    ``dd`` copies the base's bytes verbatim, so a non-raw base made an
    unbootable LV (LP#1075333). Nothing to revert: CreateVolume's revert
    wipes and removes the LV.
    """

    source = 'imagebackend.Lvm.create_image'

    def work(self, base, device, method, base_format, disk_ops=None):
        fmt = None
        if method == 'convert':
            fmt = resize.format_and_info(base, base_format)[0]
        with disk_ops_slots.slot(disk_ops):
            tools.run(*write_argv(base, device, method, fmt))
        return {'device': device, 'method': method, 'base_format': fmt}

    def preview(self, base, device, method, base_format, disk_ops=None, **_):
        notes = [WRITE_NOTES[method]] if method in WRITE_NOTES else []
        notes += disk_ops_slots.note(disk_ops, 'the convert')
        return {'command': write_argv(base, device, method,
                                      resize.shown_format(base_format)),
                'notes': notes}
