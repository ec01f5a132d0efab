"""Driving a run: a release flow executed durably, and resumed.

The run as stored is :mod:`imagepipe.runner.store`'s; who may drive it is
checked by :mod:`imagepipe.runner.guards` before any step runs.

A revert that fails leaves the run in FAILURE with the failed step in
REVERT_FAILURE: taskflow would count that step as done on resume and call
the run REVERTED without undoing it. Such steps are put back to REVERTING
before a resume, with the result their execute had (kept in the step's meta
when its revert began, since taskflow drops it on REVERT_FAILURE), so a
resume finishes the revert once its obstacle is gone.
"""

import contextlib
import signal
import sys
import threading

from oslo_utils import uuidutils
from taskflow import engines
from taskflow import exceptions as tf_exceptions
from taskflow import states
from taskflow.listeners import base as tf_listeners
from taskflow.types import failure

from imagepipe import exception
from imagepipe import flows
from imagepipe.runner import guards
from imagepipe.runner import store

#: kept for the callers that made runs before the store had a module
RunStore = store.RunStore

#: the step meta key holding what a step's execute returned, once its
#: revert began
EXECUTED = 'executed'


class Interrupted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: stop now, as a crash would."""


def rebuild(fd):
    """The flow of a stored run; refuses one whose graph changed."""
    try:
        kwargs = store.factory_kwargs(fd)
        flow = flows.factory(**kwargs)
    except (exception.ImagepipeError, KeyError, TypeError, ValueError) as e:
        raise exception.Refused(
            f'run {fd.uuid} cannot be rebuilt by the installed imagepipe '
            f'({type(e).__name__}: {e}): it cannot be resumed') from None
    stored = fd.meta.get('imagepipe', {}).get('fingerprint')
    if store.fingerprint(flow) != stored:
        raise exception.Refused(
            f'run {fd.uuid} was made by another version of the '
            f"{kwargs['release']} flow (graph {stored}, now "
            f'{store.fingerprint(flow)}): it cannot be resumed safely')
    return flow


@contextlib.contextmanager
def suspend_on_signals(engine, run_id, out=None):
    """SIGINT and SIGTERM suspend the engine after the current step.

    A second one stops at once (:class:`Interrupted`): the step in progress
    runs again on resume, as after a crash. Yields the list of the signals
    caught.
    """
    out = out or sys.stderr
    caught = []
    suspenders = []

    def handler(signum, frame):
        caught.append(signum)
        if len(caught) > 1:
            raise Interrupted()
        print(f'imagepipe: {signal.Signals(signum).name}: run {run_id} '
              'suspends after the current step (again to stop at once)',
              file=out, flush=True)
        # Not in the handler itself: the signal may have stopped this
        # thread inside a write to the run database, whose lock suspend()
        # needs too.
        suspender = threading.Thread(target=engine.suspend, daemon=True)
        suspender.start()
        suspenders.append(suspender)

    saved = {s: signal.signal(s, handler)
             for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for suspender in suspenders:
            suspender.join()
        for s, h in saved.items():
            signal.signal(s, h)


#: atom states that show a revert has begun
REVERTING = (states.REVERTING, states.REVERTED, states.REVERT_FAILURE)


def forgive_interrupted(storage, flow):
    """Make a step that failed while the run suspended run again on resume.

    Ctrl-C in a terminal (and a service manager's SIGTERM) reaches the
    whole process group: the ``qemu-img`` a step runs dies of it, the step
    fails, and the engine, asked to suspend, stops before reverting. Left
    so, resuming would revert the run (and drop a download) for an error
    the signal caused. Steps are idempotent, so the failed ones are put back
    to PENDING (a real failure happens again, and reverts then). Nothing is
    changed once a revert has begun. Returns the names of the steps reset.
    """
    names = [atom.name for atom in store.atoms(flow)]
    found = {name: storage.get_atom_state(name) for name in names}
    if any(state in REVERTING for state in found.values()):
        return []
    failed = [name for name, state in found.items()
              if state == states.FAILURE]
    if not failed:
        return []
    for name in failed:
        storage.reset(name, states.PENDING)
    for name in names:
        storage.set_atom_intention(name, states.EXECUTE)
    return failed


class _KeepExecuted(tf_listeners.Listener):
    """Keeps a step's execute result in its meta as its revert begins.

    taskflow drops the result when the revert fails; :func:`retry_reverts`
    gives it back for the next attempt. Nothing happens on a run that does
    not revert.
    """

    def __init__(self, engine):
        super().__init__(engine, task_listen_for=(states.REVERTING,),
                         flow_listen_for=())

    def _task_receiver(self, state, details):
        storage = self._engine.storage
        result = storage.get(details['task_name'])
        if not isinstance(result, failure.Failure):
            storage.update_atom_metadata(details['task_name'],
                                         {EXECUTED: result})


def retry_reverts(runs, fd):
    """Put the steps whose revert failed back to REVERTING; their names."""
    failed = [ad for ad in fd if ad.state == states.REVERT_FAILURE]
    for ad in failed:
        ad.state = states.REVERTING
        if ad.failure is None:
            ad.results = ad.meta.get(EXECUTED)
    if failed:
        runs.save_steps(failed)
    return [ad.name for ad in failed]


def failure_of(fd, flow=None):
    """(step name, one-line error) of the step whose execute failed.

    The first in flow order when ``flow`` is given.
    """
    details = list(fd)
    if flow is not None:
        order = {a.name: i for i, a in enumerate(store.atoms(flow))}
        details.sort(key=lambda ad: order.get(ad.name, len(order)))
    for ad in details:
        if ad.failure is not None:
            return ad.name, error_line(ad.failure)
    return None, None


def revert_failure_of(fd):
    """(step name, one-line error) of a step whose revert failed, if any."""
    for ad in fd:
        if ad.state == states.REVERT_FAILURE and ad.revert_failure:
            return ad.name, error_line(ad.revert_failure)
    return None, None


def error_line(failure):
    """Our errors read as they are; anything else names its type."""
    text = failure.exception_str.strip().splitlines()
    text = text[0] if text else ''
    if failure.check(exception.ImagepipeError):
        return text
    return f'{next(iter(failure))}: {text}'


def _execute(runs, fd, flow, listeners):
    """Run the engine on ``fd`` (current, its locks held).

    Returns (state, step, error); a failed revert is recorded in the run's
    meta as ``revert_step`` and ``revert_error``.
    """
    retry_reverts(runs, fd)
    runs.update(fd, finished=None, error=None, failed_step=None,
                revert_step=None, revert_error=None)
    engine = engines.load(flow, flow_detail=fd,
                          backend=runs.backend, engine='serial')
    raised = None
    with contextlib.ExitStack() as stack:
        for make in (_KeepExecuted, *listeners):
            stack.enter_context(make(engine))
        with suspend_on_signals(engine, fd.uuid) as caught:
            try:
                engine.run()
            except tf_exceptions.StorageFailure:
                raise  # the run database, not the run, failed
            except Exception as e:  # the engine reverted; report, not raise
                raised = failure.Failure.from_exception(e)
            if caught and engine.storage.get_flow_state() == states.SUSPENDED:
                for name in forgive_interrupted(engine.storage, flow):
                    print(f'imagepipe: step {name} failed as the run was '
                          'suspending: it runs again on resume',
                          file=sys.stderr)
    fd = runs.reload(fd)
    step, error = failure_of(fd, flow)
    revert_step, revert_error = revert_failure_of(fd)
    if error is None and raised is not None and revert_error is None:
        error = error_line(raised)
    runs.update(fd, finished=store.now() if fd.state in store.FINISHED
                else None, error=error, failed_step=step,
                revert_step=revert_step, revert_error=revert_error)
    return fd.state, step, error


def start(runs, kwargs, flow, lock_dir, listeners=(), announce=None):
    """Create a run of ``flow`` and drive it; (run id, state, step, error).

    Refuses (:class:`~imagepipe.exception.Refused`, nothing stored) when the
    instance is being built, has one of the disks the flow would create, or
    has an unfinished run. ``announce(run_id)`` is called once the run
    exists, before any step.
    """
    run_id = uuidutils.generate_uuid()
    with (guards.instance_lock(kwargs, lock_dir),
          guards.run_lock(run_id, lock_dir)):
        guards.check_fresh(runs, flow, kwargs)
        fd = runs.create(kwargs, flow, run_id)
        if announce is not None:
            announce(run_id)
        return (run_id,) + _execute(runs, fd, flow, listeners)


def drive(runs, fd, flow, lock_dir, listeners=(), announce=None):
    """Run or resume ``flow`` on ``fd``; return (state, step, error).

    ``listeners`` are callables taking the engine and returning a taskflow
    listener (a context manager). A failed run is reverted by the engine;
    the error is recorded in the run's meta. The run is read again once its
    locks are held, so a run another process finished meanwhile is not run
    again; a reverted run is retried only under
    :func:`~imagepipe.runner.guards.check_fresh`. ``announce(fd)`` is called
    with the run as found, once it is to be driven.
    """
    kwargs = store.factory_kwargs(fd)
    with (guards.run_lock(fd.uuid, lock_dir),
          guards.instance_lock(kwargs, lock_dir)):
        fd = runs.reload(fd)
        if fd.state == states.SUCCESS:
            meta = fd.meta.get('imagepipe', {})
            return fd.state, meta.get('failed_step'), meta.get('error')
        if fd.state == states.REVERTED:
            guards.check_fresh(runs, flow, kwargs, run_id=fd.uuid)
        if announce is not None:
            announce(fd)
        return _execute(runs, fd, flow, listeners)
