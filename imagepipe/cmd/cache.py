"""``imagepipe cache list`` and ``imagepipe cache clean [--dry-run]``.

``list`` shows every file of the release's base directory as its image
cache manager classified it, and who uses it. ``clean`` is one pass of that
manager: ``--dry-run`` prints each file's verdict and why; without it the
pass is a run (stored, listed by ``runs``, shown by ``show``) whose steps
refresh the bases in use and remove the unused old ones, each under its
locks and checked again inside them (doc/source/cache.rst).
"""

import sys

from imagepipe.cache import flow as cache_flow
from imagepipe.cache import manager
from imagepipe.cache import policy as cache_policy
from imagepipe.cache import usage
from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.conf import settings as conf_settings
from imagepipe.runner import driver
from imagepipe.runner import persistence

COLUMNS = [('name', 'FILE'), ('kind', 'KIND'), ('size', 'SIZE'),
           ('allocated', 'ALLOCATED'), ('age', 'AGE'), ('used_by', 'USED BY')]


def _warn(lines):
    for line in lines:
        print(f'imagepipe: warning: {line}', file=sys.stderr)


def _used_by(entry):
    return [f"{u['how']}:{u['instance']}" for u in entry['users']] or None


def _notes(ctx, policy, settings):
    """What the release did that this pass does not, one line each."""
    notes = []
    if settings.get('checksum_base_images') and policy.checksums:
        notes.append(
            'checksum_base_images is set: this release hashed each base in '
            f'use on every pass ({policy.source}); imagepipe reports it and '
            'does not hash')
    value = settings.get('image_cache_manager_interval')
    if value == -1 or (value == 0 and ctx.rconf.options_release != 'gazpacho'):
        notes.append(f'image_cache_manager_interval is {value}: this '
                     "release's Nova never ran the pass; this one runs "
                     'because it was asked for')
    return notes


def _scan(ctx):
    settings = conf_settings.snapshot(ctx.rconf)
    policy = cache_policy.for_release(ctx.rconf.options_release)
    connection = ctx.rconf.conf.imagepipe.connection
    with persistence.usable(connection):
        store = database.store(ctx)
        uses = usage.run_uses(store)
    base, entries, warnings = manager.scan(ctx.rconf.release, policy,
                                           settings, uses)
    return settings, policy, store, base, entries, warnings


def run(args, ctx):
    settings, policy, store, base, entries, warnings = _scan(ctx)
    _warn(warnings)
    if args.action == 'list':
        return _list(args, entries)
    decided = manager.decide(entries, settings)
    _warn(_notes(ctx, policy, settings))
    if args.dry_run:
        return _print_pass(args, base, decided)
    return _clean(args, ctx, settings, store, base, decided)


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


def _clean(args, ctx, settings, store, base, decided):
    release = ctx.rconf.release
    request = cache_flow.request_for(release, ctx.rconf.options_release,
                                     settings, base, decided)
    kwargs = {'release': release, 'settings': settings, 'request': request}
    flow = cache_flow.build(**kwargs)
    connection = ctx.rconf.conf.imagepipe.connection
    with persistence.usable(connection):
        run_id, state, step, error = driver.start_operation(
            store, kwargs, flow, database.lock_dir(ctx))
    results = {ad.name: ad.results for ad in store.get(run_id)}
    removed = [r['path'] for r in request['remove']
               if (results.get(f"remove-{r['name']}") or {}).get('removed')]
    kept = [{'path': r['path'], 'why': results[f"remove-{r['name']}"]['kept']}
            for r in request['remove']
            if isinstance(results.get(f"remove-{r['name']}"), dict)
            and not results[f"remove-{r['name']}"]['removed']]
    if args.format == 'json':
        output.as_json({'run': run_id, 'state': state, 'error': error,
                        'removed': removed, 'kept': kept,
                        'touched': request['touch']})
    else:
        print(f'run {run_id}: {state}')
        for path in removed:
            print(f'removed {path}')
        for k in kept:
            print(f"kept {k['path']}: {k['why']}")
    if error:
        print(f'imagepipe: error: step {step}: {error}', file=sys.stderr)
        return 1
    return 0
