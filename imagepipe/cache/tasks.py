"""The steps of a cache pass: refresh a base in use, remove an unused one.

RemoveBase is the deletion protocol of nova/virt/libvirt/imagecache.py@33.0.2
(_remove_old_enough_file) whatever the release: the base's locks are taken
(the fetch lock ``$hex`` and the release's copy lock, under which its
resized copies and overlays are made), then inside them the file must still
be a regular file of this user, still old enough, and used by no unfinished
run nor instance in the run database; only then it goes, with its record
(``.sha1`` / ``.info``) where the release kept one. A removal cannot be
undone: revert does nothing, and a removed base is fetched again by the next
boot that needs it.
"""

import os
import stat
import time

from imagepipe.cache import usage
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store
from imagepipe.tasks import contract
from imagepipe.tasks import locks
from imagepipe.tasks import safefs

SOURCE = 'nova/virt/libvirt/imagecache.py'


class TouchBase(contract.ImageTask):
    """_mark_in_use / _handle_base_image: the mtime of a base in use."""

    source = f'{SOURCE} _handle_base_image'

    def work(self, path):
        try:
            fd = safefs.open_existing(path)
        except FileNotFoundError:
            return {'touched': False}
        try:
            os.utime(fd)
        finally:
            os.close(fd)
        return {'touched': True}

    def preview(self, path, **_):
        return {'notes': [f'refreshes the mtime of {path} (in use)']}


def _users(connection, base_dir, name):
    """Runs that use ``name`` now: unfinished, or whose instance exists."""
    with persistence.usable(connection):
        runs = run_store.RunStore(persistence.open_backend(connection))
        return [u['run'] for u in usage.run_uses(runs)
                if u['base_dir'] == base_dir and usage.names_used(u, name)
                and (usage.unfinished(u) or usage.is_instance(u))]


class RemoveBase(contract.ImageTask):
    source = f'{SOURCE} _remove_base_file'

    def work(self, path, min_age, lock_names, lock_path, record,
                lock_file, connection):
        for name in lock_names:
            locks.hold(name, lock_path)
        try:
            why = self._why_kept(path, min_age, connection)
            if why is None:
                safefs.remove(path)
                if record:
                    safefs.remove(record)
        finally:
            for name in reversed(lock_names):
                locks.release(name)
        if why is None and lock_file:
            safefs.remove(locks.lock_file(lock_file, lock_path))
        return {'removed': why is None, 'kept': why}

    @staticmethod
    def _why_kept(path, min_age, connection):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return 'gone already (another pass removed it)'
        if not stat.S_ISREG(st.st_mode) or st.st_uid not in (
                os.geteuid(), 0):
            return 'no longer a regular file of this user'
        if time.time() - st.st_mtime < min_age:
            return 'used meanwhile (its mtime is fresh again)'
        users = _users(connection, os.path.dirname(path),
                       os.path.basename(path))
        if users:
            return f'used meanwhile by run {users[0]}'
        return None

    def preview(self, path, min_age, lock_names, record, lock_file, **_):
        notes = [f'under the locks {", ".join(lock_names)}: still there, '
                 f'still {min_age}s old or more, no unfinished run or '
                 'instance uses it']
        removes = [path] + ([record] if record else [])
        if lock_file:
            notes.append(f'then its lock file nova-{lock_file}')
        return {'removes': removes, 'notes': notes}
