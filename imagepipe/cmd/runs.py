"""``imagepipe run``, ``runs``, ``show`` and ``resume``."""

import datetime
import json
import os
import sys

from taskflow import states

from imagepipe import exception
from imagepipe.cmd import output
from imagepipe.cmd import plan as plan_cmd
from imagepipe.runner import listeners
from imagepipe.runner import persistence
from imagepipe.runner import runs

#: exit status of a run suspended by SIGINT or SIGTERM
SUSPENDED_EXIT = 130


def _store(ctx):
    return runs.RunStore(persistence.open_backend(
        ctx.rconf.conf.imagepipe.connection))


def _lock_dir(ctx):
    return os.path.join(ctx.rconf.value('state_path'), 'locks')


def _console(engine):
    return listeners.ConsoleListener(engine)


def _drive(ctx, store, book, fd, flow, fmt):
    made = [listeners.durations]
    if fmt == 'table':
        made.append(_console)
    state, step, error = runs.drive(store, book, fd, flow, _lock_dir(ctx),
                                    listeners=made)
    fd = store.reload(fd)
    steps = step_rows(fd, flow)
    if fmt == 'json':
        output.as_json({'run': fd.uuid, 'state': state, 'failed_step': step,
                        'error': error, 'steps': steps,
                        'files': files_made(steps)})
    elif state == states.SUCCESS:
        print_summary(steps)
    return _outcome(fd.uuid, state, step, error)


def _outcome(run_id, state, step, error):
    if state == states.SUCCESS:
        return 0
    if state == states.SUSPENDED:
        print(f'imagepipe: run {run_id} suspended: continue it with '
              f'"imagepipe resume {run_id}"', file=sys.stderr)
        return SUSPENDED_EXIT
    verb = ('failed and was reverted' if state == states.REVERTED
            else f'failed and stopped in state {state}')
    where = f' at step {step}' if step else ''
    print(f'imagepipe: error: run {run_id} {verb}{where}: {error}',
          file=sys.stderr)
    return 1


def step_rows(fd, flow=None):
    """Each step's state, duration, result and error, in flow order."""
    details = {ad.name: ad for ad in fd}
    names = [a.name for a in flow] if flow is not None else list(details)
    rows = []
    for name in names:
        ad = details.get(name)
        if ad is None:
            rows.append({'step': name, 'state': states.PENDING})
            continue
        rows.append({
            'step': name, 'state': ad.state,
            'duration': round(ad.meta.get('duration', 0.0), 3)
            if 'duration' in ad.meta else None,
            'result': ad.results if ad.state == states.SUCCESS else None,
            'error': runs.error_line(ad.failure) if ad.failure else None,
        })
    return rows


def files_made(steps):
    """Files named in step results that exist: path, size, allocated."""
    seen, files = set(), []
    for row in steps:
        result = row.get('result')
        path = result.get('path') if isinstance(result, dict) else None
        if not path or path in seen or not os.path.exists(path):
            continue
        seen.add(path)
        st = os.stat(path)
        files.append({'path': path, 'size': st.st_size,
                      'allocated': st.st_blocks * 512})
    return files


def print_summary(steps):
    print()
    output.table([{**r, 'duration': f"{r['duration']:.2f}s"
                   if r.get('duration') is not None else None}
                  for r in steps],
                 [('step', 'STEP'), ('state', 'STATE'),
                  ('duration', 'TIME')])
    print()
    output.table(files_made(steps), [('path', 'FILE'), ('size', 'SIZE'),
                                     ('allocated', 'ALLOCATED')])


def run(args, ctx):
    flow, kwargs = plan_cmd.build_flow(args, ctx)
    store = _store(ctx)
    book, fd = store.create(kwargs, flow)
    if args.format == 'table':
        print(f'run {fd.uuid}', flush=True)
    return _drive(ctx, store, book, fd, flow, args.format)


def _add_run_arguments(parser):
    plan_cmd.request_args.add_arguments(parser)
    output.add_format(parser)


def _duration(meta):
    if not meta.get('finished'):
        return None
    start = datetime.datetime.fromisoformat(meta['started'])
    end = datetime.datetime.fromisoformat(meta['finished'])
    return f'{(end - start).total_seconds():.0f}s'


def runs_list(args, ctx):
    rows = []
    for book in _store(ctx).books():
        for fd in book:
            meta = fd.meta.get('imagepipe', {})
            if not args.all and fd.state in runs.FINISHED:
                continue
            rows.append({'id': fd.uuid, 'release': meta.get('release'),
                         'image': meta.get('image'),
                         'instance': meta.get('instance'),
                         'state': fd.state, 'started': meta.get('started'),
                         'duration': _duration(meta),
                         'error': meta.get('error')})
    rows.sort(key=lambda r: r['started'] or '')
    output.emit(args.format, rows, [
        ('id', 'RUN'), ('release', 'RELEASE'), ('image', 'IMAGE'),
        ('instance', 'INSTANCE'), ('state', 'STATE'), ('started', 'STARTED'),
        ('duration', 'TIME'), ('error', 'ERROR')])
    return 0


def _add_runs_arguments(parser):
    parser.add_argument('--all', action='store_true',
                        help='finished runs too (default: unfinished only)')
    output.add_format(parser)


def show(args, ctx):
    _, fd = _store(ctx).find(args.run)
    rows = step_rows(fd)
    if args.format == 'json':
        output.as_json({'run': fd.uuid, 'state': fd.state,
                        **fd.meta.get('imagepipe', {}), 'steps': rows})
        return 0
    meta = fd.meta.get('imagepipe', {})
    print(f"run {fd.uuid}: {meta.get('release')} {fd.state}, image "
          f"{meta.get('image')}, instance {meta.get('instance')}")
    output.table([{**r, 'result': json.dumps(r['result'])
                   if r.get('result') is not None else None} for r in rows],
                 [('step', 'STEP'), ('state', 'STATE'),
                  ('duration', 'TIME'), ('result', 'RESULT'),
                  ('error', 'ERROR')])
    return 0


def _add_show_arguments(parser):
    parser.add_argument('run', metavar='RUN', help='run id (or a prefix)')
    output.add_format(parser)


def resume(args, ctx):
    store = _store(ctx)
    if args.all == bool(args.run):
        raise exception.ConfigError('give either RUN or --all')
    if args.run:
        targets = [store.find(args.run)]
    else:
        targets = [(b, fd) for b in store.books() for fd in b
                   if fd.state not in runs.FINISHED]
    status = 0
    for book, fd in targets:
        if fd.state == states.SUCCESS:
            print(f'run {fd.uuid} already succeeded')
            continue
        flow = runs.rebuild(fd)
        print(f'run {fd.uuid} ({fd.state}): resuming', flush=True)
        status = max(status, _drive(ctx, store, book, fd, flow, 'table'))
    return status


def _add_resume_arguments(parser):
    parser.add_argument('run', metavar='RUN', nargs='?',
                        help='run id (or a prefix)')
    parser.add_argument('--all', action='store_true',
                        help='every unfinished run (crashed or suspended)')


COMMANDS = {
    'run': (_add_run_arguments, run,
            "run the release's flow for an image and an instance"),
    'runs': (_add_runs_arguments, runs_list, 'list runs'),
    'show': (_add_show_arguments, show, "show a run's steps"),
    'resume': (_add_resume_arguments, resume,
               'continue a crashed or suspended run, or retry a reverted '
               'one'),
}
