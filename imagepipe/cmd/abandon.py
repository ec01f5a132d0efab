"""``imagepipe abandon RUN``, ``forget RUN`` and ``runs --prune``.

``abandon`` gets an instance out of a run that cannot or should not go on
(made by another version, or not wanted any more): what the run made is
reverted (cache entries under ``_base`` stay), and the run is marked
finished, so a new ``run`` of the instance is accepted. ``forget`` removes
the record of a finished run; ``runs --prune`` those of every finished run
(``--older-than DAYS``: started that long ago). An unfinished run is never
forgotten. Exit status: 0 done, 1 the revert stopped (the line says where
and how to finish it), 2 refused (nothing changed).
"""

import datetime
import sys

from imagepipe.cmd import database
from imagepipe.cmd import outcome
from imagepipe.runner import abandon as runner
from imagepipe.runner import guards
from imagepipe.runner import listeners
from imagepipe.runner import store as run_store


@database.checked
def abandon(args, ctx):
    store = database.store(ctx)
    fd = store.find(args.run)
    state, step, error, removed = runner.abandon(
        store, fd, database.lock_dir(ctx),
        listeners=(listeners.ConsoleListener,))
    if removed is not None:
        for path in removed:
            print(f'removed {path}')
        print(f'run {fd.uuid} abandoned: its graph could not be rebuilt, '
              f'{len(removed)} file(s) it recorded removed')
        return 0
    meta = store.get(fd.uuid).meta.get('imagepipe', {})
    if meta.get('revert_error'):
        return outcome.exit_status(fd.uuid, state, step, error, meta)
    print(f'run {fd.uuid} abandoned: reverted'
          f"{f' from step {step}' if step else ''}")
    return 0


@database.checked
def forget(args, ctx):
    store = database.store(ctx)
    fd = store.find(args.run)
    runner.forget(store, fd, database.lock_dir(ctx))
    print(f'run {fd.uuid} forgotten')
    return 0


def _started_before(fd, days):
    started = fd.meta.get('imagepipe', {}).get('started')
    if days is None:
        return True
    if not started:
        return False
    age = (datetime.datetime.now(datetime.timezone.utc)
           - datetime.datetime.fromisoformat(started))
    return age >= datetime.timedelta(days=days)


@database.checked
def prune(args, ctx):
    """``runs --prune``: forget every finished run (older than DAYS)."""
    store = database.store(ctx)
    lock_dir = database.lock_dir(ctx)
    count = 0
    for fd in store.all():
        if (run_store.state_of(fd) not in run_store.FINISHED
                or not _started_before(fd, args.older_than)):
            continue
        if guards.is_active(fd.uuid, lock_dir):
            print(f'run {fd.uuid} is being driven by another process: '
                  'kept', file=sys.stderr)
            continue
        runner.forget(store, fd, lock_dir)
        count += 1
    print(f'{count} finished run(s) forgotten')
    return 0
