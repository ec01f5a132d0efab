"""``imagepipe runs``: the last runs and every unfinished one.

A table shows a run id's first characters (``show`` and ``resume`` take a
prefix), sizes and times for a reader, and marks an unfinished run (and one
being driven); ``-f json|value|csv`` give the full values.
"""

import datetime

from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.runner import guards
from imagepipe.runner import store as run_store


def _duration(meta):
    """Seconds the run took, None while it is unfinished."""
    if not meta.get('finished'):
        return None
    start = datetime.datetime.fromisoformat(meta['started'])
    end = datetime.datetime.fromisoformat(meta['finished'])
    return (end - start).total_seconds()


def run_row(fd, lock_dir):
    meta = fd.meta.get('imagepipe', {})
    state = run_store.state_of(fd)
    unfinished = state not in run_store.FINISHED
    active = unfinished and guards.is_active(fd.uuid, lock_dir)
    return {'id': fd.uuid, 'release': meta.get('release'),
            'image': meta.get('image'), 'instance': meta.get('instance'),
            'state': run_store.shown_state(fd, active),
            'unfinished': unfinished, 'active': active,
            'started': meta.get('started'), 'duration': _duration(meta),
            'failed_step': meta.get('failed_step'),
            'error': meta.get('error'),
            'revert_step': meta.get('revert_step'),
            'revert_error': meta.get('revert_error')}


def _error_cell(row):
    error = row['error']
    if error and row['failed_step']:
        error = f"at {row['failed_step']}: {error}"
    if not row['revert_error']:
        return error
    return (f"{error}; revert stopped at {row['revert_step']}: "
            f"{row['revert_error']}")


def _state_cell(row):
    """The state, an unfinished run marked (and one being driven)."""
    if row['active']:
        return f"{row['state']} (being driven)"
    if row['unfinished']:
        return f"{row['state']} (unfinished)"
    return row['state']


#: characters of a run id a table shows (show and resume take a prefix)
SHORT_ID = 8


def _table_row(row):
    started = row['started']
    return {**row, 'id': row['id'][:SHORT_ID], 'error': _error_cell(row),
            'state': _state_cell(row),
            'started': started[:16].replace('T', ' ') if started else None}


RUN_COLUMNS = [('id', 'RUN'), ('release', 'RELEASE'),
               ('instance', 'INSTANCE'), ('state', 'STATE'),
               ('started', 'STARTED (UTC)'), ('duration', 'TIME', 'seconds'),
               ('image', 'IMAGE'), ('error', 'ERROR')]


@database.checked
def runs(args, ctx):
    """The last ``--limit`` runs and every unfinished one, oldest first
    (``--all``: every run); ``--prune`` forgets finished runs instead."""
    if args.prune:
        from imagepipe.cmd import abandon
        return abandon.prune(args, ctx)
    store = database.existing_store(ctx)
    lock_dir = database.lock_dir(ctx)
    rows = sorted((run_row(fd, lock_dir) for fd in store.all())
                  if store else [], key=lambda r: r['started'] or '')
    if not args.all:
        recent = {r['id'] for r in rows[len(rows) - max(args.limit, 0):]}
        rows = [r for r in rows if r['id'] in recent or r['unfinished']]
    if args.format == 'table':
        rows = [_table_row(r) for r in rows]
    output.emit(args, rows, RUN_COLUMNS)
    return 0
