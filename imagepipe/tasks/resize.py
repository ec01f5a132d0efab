"""Growing a disk, then the filesystem on it (Nova's ``disk.api.extend``).

Nova first grew the image with ``qemu-img resize`` (only ever upwards), then
tried to grow an ext2/3/4 filesystem lying directly on the disk with
``e2fsck -fp`` and ``resize2fs``. How carefully it looked before running them,
and which exit codes it accepted, changed by release; the filesystem tools
never failed the spawn.
"""

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import base
from imagepipe.tasks import locks

#: What a plan shows where a format hint is None and a run probes it.
PROBED = '<probed format>'

#: variant -> (e2label must succeed first, strict exit codes).
VARIANTS = {
    'blind': (False, False),     # Essex .. Grizzly
    'checked': (True, False),    # Havana
    'strict': (True, True),      # Icehouse, Juno, modern
    'device': (False, True),     # LVM: the whole LV, no partition check
}

#: e2fsck exit statuses after which Icehouse+ still ran resize2fs.
E2FSCK_OK = (0, 1, 2)

VARIANT_NOTES = {
    'blind': 'exit codes ignored: on a qcow2 file, a partitioned disk or a '
             'non-ext filesystem both tools fail and nothing is grown',
    'checked': 'skipped unless e2label finds an ext2/3/4 filesystem '
               'directly on the disk; exit codes ignored',
    'strict': 'skipped unless e2label finds an ext2/3/4 filesystem directly '
              'on the disk; resize2fs only if e2fsck exits 0, 1 or 2 '
              '(LP#1270088)',
    'device': 'run as root on the whole logical volume, no partition check; '
              'resize2fs only if e2fsck exits 0, 1 or 2',
}


def inspect(path, hint):
    """``qemu-img info`` of ``path`` read as ``hint``: (format, info).

    ``hint`` None means the format is not known yet: qemu-img probes it.
    """
    info = tools.qemu_img_info(path, hint)
    return hint or info.file_format, info


def shown_format(hint):
    """A format hint as the plan shows it."""
    return PROBED if hint is None else hint


def resize_argv(path, size, fmt):
    return ['qemu-img', 'resize', '-f', fmt, path, str(size)]


def fs_argvs(target, gate):
    """The commands that grow the filesystem on ``target``, in order."""
    argvs = [['e2label', target]] if gate else []
    return argvs + [['e2fsck', '-fp', target], ['resize2fs', target]]


def variant_of(name):
    """(gate, strict) of a ResizeFilesystem variant; ConfigError if unknown."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise exception.ConfigError(
            f'unknown filesystem resize variant {name!r}: expected one of '
            f'{", ".join(VARIANTS)}') from None


def exit_status(*argv):
    """Run a tool whose failure Nova ignored; its exit status is the result."""
    return tools.run(*argv, ok=None)[0]


def fs_result(grown, reason, e2fsck_status=None, resize2fs_status=None):
    return {'grown': grown, 'reason': reason,
            'e2fsck_status': e2fsck_status,
            'resize2fs_status': resize2fs_status}


def grow_filesystem(target, strict):
    """``e2fsck -fp`` then ``resize2fs`` on ``target``; never raises on them.

    ``strict`` is the Icehouse rule: resize2fs runs only after e2fsck exited
    0, 1 or 2. Otherwise both statuses are only recorded.
    """
    fsck = exit_status('e2fsck', '-fp', target)
    if strict and fsck not in E2FSCK_OK:
        return fs_result(False, f'e2fsck -fp exited {fsck}: resize2fs '
                         'skipped', fsck)
    grow = exit_status('resize2fs', target)
    reason = 'filesystem grown' if grow == 0 else f'resize2fs exited {grow}'
    return fs_result(grow == 0, reason, fsck, grow)


def not_resized():
    return fs_result(False, 'the disk was not grown: nothing to do')


def _grow_image(path, size, hint):
    fmt, info = inspect(path, hint)
    before = info.virtual_size
    if before < size:
        # qemu-img resize makes exactly ``size`` or fails
        tools.run(*resize_argv(path, size, fmt))
    return {'resized': before < size, 'virtual_size_before': before,
            'virtual_size': max(before, size), 'format': fmt}


def _grow_fs(path, variant, resized):
    gate, strict = variant_of(variant)
    if not resized:
        return not_resized()
    if gate and exit_status('e2label', path) != 0:
        return fs_result(False, 'e2label failed: no ext2/3/4 filesystem '
                         'directly on the disk, not resized')
    return grow_filesystem(path, strict)


class ResizeImage(base.ImageTask):
    """Grow the disk's virtual size to ``size`` bytes, never shrink it.

    Known gap: a crash between ``qemu-img resize`` and the result being saved
    makes the re-run find the disk already at ``size`` and report ``resized``
    False, so the filesystem step after it is skipped (the guest may still
    grow its filesystem at boot, as cloud images do).
    """

    source = 'disk.api.extend'
    notes = ('Nova ran qemu-img resize without -f, letting qemu probe the '
             'format; the format is pinned as Nova does since the '
             'CVE-2026-24708 fix',)

    def execute(self, path, size, format, lock):
        with locks.held(lock):
            return _grow_image(path, size, format)

    def revert(self, lock, **_):
        # The disk belongs to the task that created it; its revert removes it.
        locks.abandon(lock)

    def preview(self, path, size, format, **_):
        return {'command': resize_argv(path, size, shown_format(format)),
                'notes': [f'only when the virtual size of {path} is below '
                          f'{size} bytes: a disk is never shrunk']}


class ResizeFilesystem(base.ImageTask):
    """Grow the ext filesystem lying directly on a file or LV that was grown.

    ``variant`` picks the release's rules (see ``VARIANTS``). Exit statuses
    are results, as in Nova: only a tool that is missing, cannot start or is
    killed by a signal raises.
    """

    source = 'disk.api.resize2fs'

    def execute(self, path, variant, lock, resize):
        with locks.held(lock):
            return _grow_fs(path, variant, resize['resized'])

    def revert(self, lock, **_):
        locks.abandon(lock)

    def preview(self, path, variant, resize, **_):
        gate, _strict = variant_of(variant)
        return {'command': fs_argvs(path, gate),
                'notes': [f'only when {resize["resized"]} is true',
                          VARIANT_NOTES[variant]]}
