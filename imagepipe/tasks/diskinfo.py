"""Recording a disk's format in ``$D/disk.info`` (Havana 2013.2.3+).

Once a format is recorded, Nova trusted it instead of probing the disk again,
which closed LP#1221190: a guest writing a qcow2 header into its raw disk
could otherwise make the host open it as qcow2 on the next boot.
"""

import json
import os

from oslo_concurrency import lockutils

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import resize
from imagepipe.tasks import safefs


def tmp_name(info):
    return info + '.tmp'


def probe(disk):
    """What qemu-img detects in ``disk``, raw when it cannot tell (Juno)."""
    try:
        return tools.qemu_img_info(disk).file_format or 'raw'
    except exception.ToolFailed:
        return 'raw'


class NotDiskInfo(exception.ImagepipeError):
    """The instance's disk.info cannot be read as Nova wrote it."""


def _read(info):
    """The entries of ``info``; {} when there is none."""
    try:
        fd = safefs.open_existing(info)
        with os.fdopen(fd, 'rb') as f:
            data = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise NotDiskInfo(f'cannot read {info}: {e.strerror}') from None
    try:
        text = data.decode('utf-8')
        entries = json.loads(text) if text.strip() else {}
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError too
        raise NotDiskInfo(
            f'{info} is not a disk.info Nova wrote: {e}') from None
    if not isinstance(entries, dict):
        raise NotDiskInfo(
            f'{info} is not a disk.info Nova wrote: it holds a JSON '
            f'{type(entries).__name__}, not an object')
    return entries


def _write(info, entries, atomic):
    """One JSON line; ``atomic`` (Juno+) writes a tmp file and renames it."""
    text = json.dumps(entries).encode()
    if atomic:
        fd = safefs.create(tmp_name(info), safefs.NOVA_MODE)
    else:
        fd = safefs.open_or_create(info, safefs.NOVA_MODE)
        os.ftruncate(fd, 0)
    with os.fdopen(fd, 'wb') as f:
        f.write(text)
    if atomic:
        safefs.publish(tmp_name(info), info)


def _record(info, disk, fmt, atomic):
    entries = _read(info)
    known = entries.get(disk)
    if known not in (None, fmt):
        raise exception.ImageUnacceptable(
            f'Attempted overwrite of an existing value in {info}: {disk} is '
            f'recorded as {known}, not {fmt}')
    if known is None:
        entries[disk] = fmt
        _write(info, entries, atomic)
    return {'info': info, 'disk': disk, 'format': fmt,
            'written': known is None}


def _forget(info, disk, atomic):
    """Drop ``disk``'s entry; a disk.info that cannot be read holds none of
    this run's (its execute refused it) and is left as it is."""
    try:
        entries = _read(info)
    except (NotDiskInfo, safefs.UnsafePath):
        return
    if entries.pop(disk, None) is None:
        return
    if entries:
        _write(info, entries, atomic)
    else:
        safefs.remove(info)


class RecordDiskFormat(contract.ImageTask):
    """Add ``{disk: format}`` to disk.info; ``format`` None probes the disk.

    The same value already recorded is fine (a re-run); a different one is
    refused. Revert removes the disk's entry whoever wrote it: the disk it
    describes is being removed by the same revert. Writes are serialized per
    file by an in-process lock, as in Nova.
    """

    source = 'imagebackend.Image.resolve_driver_format'

    def work(self, info, disk, format, atomic):
        safefs.directory(os.path.dirname(info))
        with lockutils.lock(info):
            fmt = format if format is not None else probe(disk)
            return _record(info, disk, fmt, atomic)

    def undo(self, info, disk, atomic, **_):
        with lockutils.lock(info):
            safefs.remove(tmp_name(info))
            _forget(info, disk, atomic)

    def preview(self, info, disk, format, atomic, **_):
        how = ('written to disk.info.tmp, then renamed (Juno+)' if atomic
               else 'rewritten in place (Icehouse)')
        entry = json.dumps({disk: resize.shown_format(format)})
        notes = [f'records {entry} in {info}: {how}',
                 'a different format already recorded for the disk is '
                 'refused']
        if format is None:
            notes.append('raw when qemu-img cannot tell the format')
        return {'command': None, 'creates': [info], 'notes': notes}
