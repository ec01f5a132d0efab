"""``imagepipe run``, ``show`` and ``resume`` (``runs`` is
:mod:`imagepipe.cmd.listing`).

``run`` prints ``run <RUN>`` first (the run id, a taskflow flow detail UUID),
then a line a step, then a summary; ``--format json`` prints one object at
the end instead. ``show RUN`` prints a run's steps and results, as a table
or as JSON. ``resume RUN``
continues a crashed or suspended run from its last finished step, finishes
the revert of a run whose revert stopped, or retries a reverted one from the
start (a cache a step published is reused); ``resume --all`` does so for
every unfinished run nobody is driving.

Exit status: 0 the run succeeded; 1 it failed (one line on stderr names the
step and the error; the run was reverted unless the line names the step its
revert stopped at), or the run database failed under a run (the line names
the run to resume); 2 nothing was done: bad usage or configuration, a run
database that is not usable, or a refusal (the instance
already has a disk the flow would create, or another run of it is
unfinished or being driven; the run is driven by another process; the
installed code no longer builds the graph the run was made with); 130 the
run was suspended by SIGINT or SIGTERM (the step in progress stops at once
and runs again on resume; a second signal stops the process at once, as a
crash would), or because another process took its run lock while the
run database restarted (PostgreSQL), and ``resume`` continues it;
``resume --all`` stopped so resumes no further run. A run that can go no
further is abandoned with ``abandon``. A run killed outright (SIGKILL,
power loss) is listed by ``runs`` as INTERRUPTED and continued by
``resume``, the step it was in running again.
"""

import logging
import os
import sys
import textwrap

from taskflow import states

from imagepipe import exception
from imagepipe import libvirt
from imagepipe import units
from imagepipe.cmd import database
from imagepipe.cmd import listing
from imagepipe.cmd import outcome
from imagepipe.cmd import output
from imagepipe.cmd import plan as plan_cmd
from imagepipe.runner import driver
from imagepipe.runner import guards
from imagepipe.runner import interrupts
from imagepipe.runner import listeners
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store

LOG = logging.getLogger('imagepipe')


def _listeners(fmt):
    made = listeners.progress(fmt)
    if LOG.isEnabledFor(logging.DEBUG):
        made.append(listeners.debug_log)
    return made


@database.checked
def run(args, ctx):
    flow, kwargs = plan_cmd.build_flow(args, ctx)
    database.say_defaults(ctx)
    store = database.store(ctx)
    started = []

    def announce(run_id):
        started.append(run_id)
        if args.format == 'table':
            print(f'run {run_id}', flush=True)

    try:
        with persistence.usable(database.connection(ctx)):
            run_id, state, step, error = driver.start(
                store, kwargs, flow, database.lock_dir(ctx),
                listeners=_listeners(args.format), announce=announce)
    except interrupts.Interrupted:
        return outcome.interrupted(started[0])
    except exception.DatabaseUnusable as e:
        if not started:
            raise
        return outcome.stopped(started[0], e)
    return outcome.report(store, run_id, flow, args.format, state, step, error)


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


def _found(ctx, run_id):
    store = database.existing_store(ctx, say=False)
    if store is None:
        raise exception.Refused(f'no run matches {run_id!r}: no runs yet')
    return store.find(run_id)


#: result fields that are sizes in bytes
SIZE_FIELDS = ('size', 'virtual_size', 'allocated', 'bytes', 'root_size')


def _value(field, value):
    if field in SIZE_FIELDS and isinstance(value, int):
        return f'{units.size(value)} ({value} bytes)'
    if isinstance(value, dict):
        return ', '.join(f'{k}={_value(k, v)}' for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return '; '.join(str(_value(field, v)) for v in value)
    return value


def _result_rows(steps):
    """A row for each field of each step's result."""
    rows = []
    for step in steps:
        result = step.get('result')
        if isinstance(result, dict):
            rows += [{'step': step['step'], 'field': field,
                      'value': _value(field, value)}
                     for field, value in result.items()]
        elif result is not None:
            rows.append({'step': step['step'], 'field': 'result',
                         'value': _value('result', result)})
    return rows


@database.checked
def show(args, ctx):
    fd = _found(ctx, args.run)
    if args.libvirt_xml or args.domain:
        return _libvirt(args, fd)
    rows = outcome.step_rows(fd)
    row = listing.run_row(fd, database.lock_dir(ctx))
    if args.format == 'json':
        output.as_json({'run': fd.uuid, **fd.meta.get('imagepipe', {}),
                        'state': row['state'], 'active': row['active'],
                        'steps': rows})
        return 0
    meta = fd.meta.get('imagepipe', {})
    active = ' (being driven now)' if row['active'] else ''
    head = [f"run {fd.uuid}: {meta.get('release')} {row['state']}{active}, "
            f"instance {meta.get('instance')}", f"image {meta.get('image')}"]
    if meta.get('error'):
        step = meta.get('failed_step')
        head.append(f"error{f' at step {step}' if step else ''}: "
                    f"{meta['error']}")
    if meta.get('revert_error'):
        head.append(outcome.revert_left(fd.uuid, meta))
    for text in head:
        print('\n'.join(textwrap.wrap(text, output.WIDTH,
                                       subsequent_indent='  ')))
    output.table(rows, [('step', 'STEP'), ('state', 'STATE'),
                        ('duration', 'TIME', 'seconds'), ('error', 'ERROR')])
    results = _result_rows(rows)
    if results:
        print()
        output.table(results, [('step', 'STEP'), ('field', 'RESULT'),
                               ('value', 'VALUE')])
    return 0


def _resume_one(ctx, store, fd):
    if fd.state == states.SUCCESS:
        print(f'run {fd.uuid} already succeeded')
        return 0

    def announce(current):
        if current.state == states.REVERTED:
            verb = 'retrying it from the start'
        elif current.meta.get('imagepipe', {}).get('revert_error'):
            verb = 'finishing its revert'
        else:
            verb = 'resuming'
        print(f'run {current.uuid} ({run_store.state_of(current)}): {verb}',
              flush=True)

    try:
        with persistence.usable(database.connection(ctx)):
            flow, state, step, error = driver.resume(
                store, fd, database.lock_dir(ctx),
                listeners=_listeners('table'), announce=announce)
    except interrupts.Interrupted:
        return outcome.interrupted(fd.uuid)
    except exception.DatabaseUnusable as e:
        return outcome.stopped(fd.uuid, e)
    return outcome.report(store, fd.uuid, flow, 'table', state, step, error)


def _not_resumed(left):
    if left:
        said = (f'run {left[0].uuid} was' if len(left) == 1 else
                f"runs {', '.join(f.uuid for f in left)} were")
        print(f'imagepipe: stopped: {said} not resumed', file=sys.stderr)


@database.checked
def resume(args, ctx):
    if args.all == bool(args.run):
        raise exception.ConfigError('give either RUN or --all')
    database.say_defaults(ctx)
    store = database.store(ctx)
    if args.run:
        return _resume_one(ctx, store, store.find(args.run))
    lock_dir = database.lock_dir(ctx)
    status = 0
    waiting = [fd for fd in store.all()
               if run_store.state_of(fd) not in run_store.FINISHED]
    for i, fd in enumerate(waiting):
        if guards.is_active(fd.uuid, lock_dir):
            print(f'run {fd.uuid} is being driven by another process: '
                  'skipped')
            continue
        try:
            status = max(status, _resume_one(ctx, store, fd))
        except exception.Refused as e:
            print(f'imagepipe: error: {e}', file=sys.stderr)
            status = max(status, e.exit_code)
        if status == outcome.SUSPENDED_EXIT:  # Ctrl-C: the others stay
            _not_resumed(waiting[i + 1:])
            break
    return status
