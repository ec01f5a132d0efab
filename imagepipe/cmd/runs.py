"""``imagepipe run``, ``runs``, ``show`` and ``resume``.

``run`` prints ``run <RUN>`` first (the run id, a taskflow flow detail UUID),
then a line a step, then a summary; ``--format json`` prints one object at
the end instead. ``runs`` lists unfinished runs (crashed, suspended, never
started, or stopped by a storage failure; ``--all`` adds the finished ones),
``show RUN`` a run's steps, both as a table or as JSON. ``resume RUN``
continues a crashed or suspended run from its last finished step, or retries
a reverted one from the start (a cache a step published is reused);
``resume --all`` does so for every unfinished run nobody is driving.

Exit status: 0 the run succeeded; 1 it failed (one line on stderr names the
step and the error; the run was reverted unless it says otherwise); 2
nothing was done: bad usage or configuration, or a refusal (the instance
already has a disk the flow would create, or another run of it is
unfinished or being driven; the run is driven by another process; the
installed code no longer builds the graph the run was made with); 130 the
run was suspended by SIGINT or SIGTERM (it stops after the current step; a
second signal stops it at once, as a crash would) and ``resume`` continues
it. A run killed outright (SIGKILL, power loss) is listed by ``runs`` and
continued by ``resume``, the step it was in running again.
"""

import datetime
import json
import os
import sys

from taskflow import states

from imagepipe import exception
from imagepipe import libvirt
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


def _listeners(fmt):
    made = [listeners.durations]
    if fmt == 'table':
        made.append(_console)
    return made


def _report(store, run_id, flow, fmt, state, step, error):
    """Print what a drive ended in; return the exit status."""
    fd = store.get(run_id)
    steps = step_rows(fd, flow)
    if fmt == 'json':
        output.as_json({'run': run_id, 'state': state, 'failed_step': step,
                        'error': error, 'steps': steps,
                        'files': files_made(steps)})
    elif state == states.SUCCESS:
        print_summary(steps)
    return _outcome(run_id, state, step, error)


def _interrupted(run_id):
    print(f'imagepipe: run {run_id} stopped in the middle of a step: '
          f'continue it with "imagepipe resume {run_id}"', file=sys.stderr)
    return SUSPENDED_EXIT


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
    started = []

    def announce(run_id):
        started.append(run_id)
        if args.format == 'table':
            print(f'run {run_id}', flush=True)

    try:
        run_id, state, step, error = runs.start(
            store, kwargs, flow, _lock_dir(ctx),
            listeners=_listeners(args.format), announce=announce)
    except runs.Interrupted:
        return _interrupted(started[0])
    return _report(store, run_id, flow, args.format, state, step, error)


def _duration(meta):
    if not meta.get('finished'):
        return None
    start = datetime.datetime.fromisoformat(meta['started'])
    end = datetime.datetime.fromisoformat(meta['finished'])
    return f'{(end - start).total_seconds():.0f}s'


def _run_row(fd, lock_dir):
    meta = fd.meta.get('imagepipe', {})
    state = runs.state_of(fd)
    return {'id': fd.uuid, 'release': meta.get('release'),
            'image': meta.get('image'), 'instance': meta.get('instance'),
            'state': state,
            'active': (state not in runs.FINISHED
                       and runs.is_active(fd.uuid, lock_dir)),
            'started': meta.get('started'), 'duration': _duration(meta),
            'failed_step': meta.get('failed_step'),
            'error': meta.get('error')}


def runs_list(args, ctx):
    lock_dir = _lock_dir(ctx)
    rows = [_run_row(fd, lock_dir) for fd in _store(ctx).all()
            if args.all or runs.state_of(fd) not in runs.FINISHED]
    rows.sort(key=lambda r: r['started'] or '')
    output.emit(args.format, rows, [
        ('id', 'RUN'), ('release', 'RELEASE'), ('image', 'IMAGE'),
        ('instance', 'INSTANCE'), ('state', 'STATE'), ('active', 'ACTIVE'),
        ('started', 'STARTED'), ('duration', 'TIME'),
        ('failed_step', 'FAILED STEP'), ('error', 'ERROR')])
    return 0


def _libvirt(args, fd):
    """``show --libvirt-xml`` / ``--domain``: what the release told libvirt."""
    if fd.state != states.SUCCESS:
        raise exception.RunError(f'run {fd.uuid} is {fd.state}: it made no '
                                 'disk to describe')
    kwargs, results = libvirt.for_run(fd)
    if args.libvirt_xml:
        print(libvirt.disk_xml(kwargs, results), end='')
        return 0
    if not (args.kernel and args.initrd):
        raise exception.ConfigError('--domain needs --kernel and --initrd')
    source = libvirt.root_disk(kwargs, results)['source']
    console = args.console or os.path.join(
        os.path.dirname(source) if source.startswith(
            kwargs['settings']['instances_path']) else '.', 'console.log')
    print(libvirt.domain_xml(kwargs, results, os.path.abspath(args.kernel),
                             os.path.abspath(args.initrd),
                             os.path.abspath(console)), end='')
    return 0


def show(args, ctx):
    fd = _store(ctx).find(args.run)
    if args.libvirt_xml or args.domain:
        return _libvirt(args, fd)
    rows = step_rows(fd)
    row = _run_row(fd, _lock_dir(ctx))
    if args.format == 'json':
        output.as_json({'run': fd.uuid, **fd.meta.get('imagepipe', {}),
                        'state': row['state'], 'active': row['active'],
                        'steps': rows})
        return 0
    meta = fd.meta.get('imagepipe', {})
    active = ' (being driven now)' if row['active'] else ''
    print(f"run {fd.uuid}: {meta.get('release')} {row['state']}{active}, "
          f"image {meta.get('image')}, instance {meta.get('instance')}")
    if meta.get('error'):
        step = meta.get('failed_step')
        print(f"error{f' at step {step}' if step else ''}: {meta['error']}")
    output.table([{**r, 'result': json.dumps(r['result'])
                   if r.get('result') is not None else None} for r in rows],
                 [('step', 'STEP'), ('state', 'STATE'),
                  ('duration', 'TIME'), ('result', 'RESULT'),
                  ('error', 'ERROR')])
    return 0


def _resume_one(ctx, store, fd):
    if fd.state == states.SUCCESS:
        print(f'run {fd.uuid} already succeeded')
        return 0
    flow = runs.rebuild(fd)

    def announce(current):
        verb = ('retrying it from the start'
                if current.state == states.REVERTED else 'resuming')
        print(f'run {current.uuid} ({runs.state_of(current)}): {verb}',
              flush=True)

    try:
        state, step, error = runs.drive(
            store, fd, flow, _lock_dir(ctx),
            listeners=_listeners('table'), announce=announce)
    except runs.Interrupted:
        return _interrupted(fd.uuid)
    return _report(store, fd.uuid, flow, 'table', state, step, error)


def resume(args, ctx):
    store = _store(ctx)
    if args.all == bool(args.run):
        raise exception.ConfigError('give either RUN or --all')
    if args.run:
        return _resume_one(ctx, store, store.find(args.run))
    lock_dir = _lock_dir(ctx)
    status = 0
    for fd in store.all():
        if runs.state_of(fd) in runs.FINISHED:
            continue
        if runs.is_active(fd.uuid, lock_dir):
            print(f'run {fd.uuid} is being driven by another process: '
                  'skipped')
            continue
        try:
            status = max(status, _resume_one(ctx, store, fd))
        except runs.Refused as e:
            print(f'imagepipe: error: {e}', file=sys.stderr)
            status = max(status, e.exit_code)
    return status
