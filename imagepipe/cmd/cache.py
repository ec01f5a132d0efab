"""``imagepipe cache list`` and ``imagepipe cache clean [--dry-run]``.

``list`` shows every file of the release's base directory as its image
cache manager classified it, and who uses it. ``clean`` is one pass of that
manager: ``--dry-run`` prints each file's verdict and why; without it the
pass is a run (stored, listed by ``runs``, shown by ``show``) whose steps
refresh the bases in use and remove the unused old ones, each under its
locks and checked again inside them (doc/source/cache.rst).
"""

import sys

from imagepipe.cache import clean
from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.runner import persistence

COLUMNS = [('name', 'FILE'), ('kind', 'KIND'), ('size', 'SIZE'),
           ('allocated', 'ALLOCATED'), ('age', 'AGE'), ('used_by', 'USED BY')]


def _warn(lines):
    for line in lines:
        print(f'imagepipe: warning: {line}', file=sys.stderr)


def _used_by(entry):
    return [f"{u['how']}:{u['instance']}" for u in entry['users']] or None


def run(args, ctx):
    with persistence.usable(database.connection(ctx)):
        store = database.store(ctx)
    found = clean.survey(ctx.rconf, store)
    _warn(found.warnings)
    if args.action == 'list':
        return _list(args, found.entries)
    decided = clean.decide(found)
    _warn(clean.notes(found))
    if args.dry_run:
        return _print_pass(args, found.base, decided)
    return _clean(args, ctx, store, found, decided)


def _list(args, entries):
    if args.format == 'json':
        output.as_json(entries)
        return 0
    output.table([{**e, 'used_by': _used_by(e),
                   'kind': e['kind'] + (f" ({e['problem']})"
                                        if e['problem'] else '')}
                  for e in entries], COLUMNS)
    return 0


def _print_pass(args, base, decided):
    if args.format == 'json':
        output.as_json({'base_dir': base, 'files': decided})
        return 0
    print(f'cache pass over {base}')
    output.table(decided, [('name', 'FILE'), ('kind', 'KIND'),
                           ('age', 'AGE'), ('action', 'ACTION'),
                           ('reason', 'WHY')])
    return 0


def _clean(args, ctx, store, found, decided):
    done = clean.make(ctx.rconf, store, database.lock_dir(ctx), found,
                      decided)
    if args.format == 'json':
        output.as_json({k: done[k] for k in ('run', 'state', 'error',
                                              'removed', 'kept', 'touched')})
    else:
        print(f"run {done['run']}: {done['state']}")
        for path in done['removed']:
            print(f'removed {path}')
        for k in done['kept']:
            print(f"kept {k['path']}: {k['why']}")
    if done['error']:
        print(f"imagepipe: error: step {done['step']}: {done['error']}",
              file=sys.stderr)
        return 1
    return 0
