"""Growing a disk, then the filesystem on it (Nova's ``disk.api.extend``).

Nova first grew the image with ``qemu-img resize`` (only ever upwards), then
tried to grow an ext2/3/4 filesystem lying directly on the disk with
``e2fsck -fp`` and ``resize2fs``. How carefully it looked before running them,
and which exit codes it accepted, changed by release; the filesystem tools
never failed the spawn.
"""

import os

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import safefs

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


def format_and_info(path, hint):
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


def not_resized(reason='the disk was not grown: nothing to do'):
    return fs_result(False, reason)


#: Why a staged cache entry is not grown again.
REUSED = 'a cached entry, grown by the run that made it'
FINISHED = 'published already: grown before it was published'


def staged_state(made):
    """None when ``made`` (CopyImage's result) is a staged copy to finish,
    else why there is nothing to do: the entry was reused, or its copy was
    grown and published already (a resumed or another run)."""
    if not made['copied']:
        return REUSED
    if not os.path.exists(made['staged']) and os.path.exists(made['path']):
        return FINISHED
    return None


def _grow_image(path, size, hint, origin_size):
    """Grow ``path`` to ``size``; ``resized`` says whether what it was made
    from (``origin_size``) was smaller, whatever this attempt found: a
    re-run after a crash finds the disk grown already, yet its filesystem
    still needs growing."""
    safefs.existing_file(path, 'resize it')  # qemu-img follows links
    fmt, info = format_and_info(path, hint)
    if info.virtual_size < size:
        # qemu-img resize makes exactly ``size`` or fails
        tools.run(*resize_argv(path, size, fmt))
    return {'resized': origin_size < size,
            'virtual_size_before': origin_size,
            'virtual_size': max(info.virtual_size, size), 'format': fmt}


def _grow_fs(path, variant, resized):
    gate, strict = variant_of(variant)
    if not resized:
        return not_resized()
    if gate and exit_status('e2label', path) != 0:
        return fs_result(False, 'e2label failed: no ext2/3/4 filesystem '
                         'directly on the disk, not resized')
    return grow_filesystem(path, strict)


class ResizeImage(contract.ImageTask):
    """Grow the disk's virtual size to ``size`` bytes, never shrink it.

    Whether the disk was grown is decided from ``origin`` (the inspection of
    the image the disk was made from), not from the disk: a crash between
    ``qemu-img resize`` and the result being saved would otherwise make the
    re-run find a full-size disk, say "not resized" and skip the filesystem.
    ``made`` (a staged cache entry's CopyImage result) names the file to
    grow; a reused entry is not touched.
    """

    source = 'disk.api.extend'

    def work(self, path, size, format, origin, made=None):
        if made is not None:
            done = staged_state(made)
            if done:
                return {'resized': False, 'reason': done,
                        'virtual_size_before': None,
                        'virtual_size': None, 'format': format}
            path = made['staged']
        return _grow_image(path, size, format, origin['virtual_size'])

    def preview(self, path, size, format, origin, **_):
        return {'command': resize_argv(path, size, shown_format(format)),
                'notes': [f'only when the virtual size of {path} is below '
                          f'{size} bytes: a disk is never shrunk',
                          'the filesystem step follows when '
                          f'{origin["virtual_size"]} (the image the disk '
                          f'was made from) is below {size} bytes']}


class ResizeFilesystem(contract.ImageTask):
    """Grow the ext filesystem lying directly on a file or LV that was grown.

    ``variant`` picks the release's rules (see ``VARIANTS``). Exit statuses
    are results, as in Nova: only a tool that is missing, cannot start or is
    killed by a signal raises. With ``made`` (a staged cache entry), the
    grown copy is then published under its cache name: an entry is there
    only once it is whole.
    """

    source = 'disk.api.resize2fs'

    def work(self, path, variant, resize, made=None):
        if made is None:
            return _grow_fs(path, variant, resize['resized'])
        done = staged_state(made)
        if done:
            return not_resized(done)
        grown = _grow_fs(made['staged'], variant, resize['resized'])
        safefs.publish(made['staged'], made['path'])
        return grown

    def preview(self, path, variant, resize, made=None, **_):
        gate, _strict = variant_of(variant)
        notes = [f'only when {resize["resized"]} is true',
                 VARIANT_NOTES[variant]]
        if made is not None:
            notes.append(f'then {path} is renamed to {made["path"]}: the '
                         'cache entry appears whole')
        return {'command': fs_argvs(path, gate), 'notes': notes}
