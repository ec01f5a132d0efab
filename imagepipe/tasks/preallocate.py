"""Reserving a disk's space up front (Nova's ``preallocate_images``).

Nova first checked that fallocate works where the disk lives by allocating
one byte of a test file; if that printed anything, preallocation was off for
the life of the process. Otherwise ``fallocate -n -l S`` reserved the whole
disk, and running out of space failed the spawn at once.
"""

from imagepipe import exception
from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import safefs

ENOSPC = 'No space left on device'

KEEP_SIZE_NOTE = ('fallocate from util-linux >= 2.26 does not create the '
                  'test file under -n: the probe fails and preallocation '
                  'stays off, as it would for Nova on such a host')


def probe_file(path):
    return path + '.fallocate_test'


def probe_argv(path, keep_size):
    """Grizzly .. Juno probed with ``-n`` (keep size), modern Nova without.

    util-linux 2.26 and later do not create a missing file under ``-n``, so
    there the old probe always fails and preallocation stays off.
    """
    flags = ['-n'] if keep_size else []
    return ['fallocate', *flags, '-l', '1', probe_file(path)]


def fallocate_argv(path, size):
    return ['fallocate', '-n', '-l', str(size), path]


def _probe_problem(path, keep_size):
    """What the probe printed or its failure; '' when fallocate works.

    fallocate makes the test file itself (that is what is probed): a
    leftover of ours is removed first and a planted link refused.
    """
    safefs.existing_file(probe_file(path), 'let fallocate write through it')
    safefs.remove(probe_file(path))
    code, _, err = tools.run(*probe_argv(path, keep_size), ok=None)
    safefs.remove(probe_file(path))
    return err.strip() or (f'exit status {code}' if code else '')


def _fallocate(path, size):
    safefs.existing_file(path, 'preallocate through it')
    try:
        tools.run(*fallocate_argv(path, size))
    except exception.ToolFailed as e:
        if ENOSPC in str(e):
            raise exception.NoSpace(
                f'no space left to preallocate {size} bytes for {path}'
            ) from None
        raise


class Preallocate(contract.ImageTask):
    """``fallocate -n -l size path`` unless the probe says it cannot work.

    A failing probe is not an error (Nova logged it and went on without
    preallocation); ENOSPC on the disk itself is, as NoSpace. The disk is
    never removed here: whoever created it does that.
    """

    source = 'imagebackend.Image.cache'
    notes = ('Nova preallocated only disks the nova user could write; '
             'imagepipe runs as the owner of the disk',)

    def work(self, path, size, probe_keep_size):
        if not size:
            return {'preallocated': False,
                    'reason': 'no disk size (flavor root_gb 0)'}
        problem = _probe_problem(path, probe_keep_size)
        if problem:
            return {'preallocated': False,
                    'reason': f'fallocate probe failed ({problem}): '
                              'preallocation disabled'}
        _fallocate(path, size)
        return {'preallocated': True, 'reason': f'{size} bytes reserved'}

    def undo(self, path, **_):
        safefs.remove(probe_file(path))

    def preview(self, path, size, probe_keep_size, **_):
        notes = [f'skipped if the probe on {probe_file(path)} fails',
                 'ENOSPC fails the flow']
        if probe_keep_size:
            notes.append(KEEP_SIZE_NOTE)
        return {'command': [probe_argv(path, probe_keep_size),
                            fallocate_argv(path, size)],
                'notes': notes}
