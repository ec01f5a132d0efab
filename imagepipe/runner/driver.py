"""Driving a run: a release flow executed durably, and resumed.

The run as stored is :mod:`imagepipe.runner.store`'s; who may drive it is
checked by :mod:`imagepipe.runner.guards` before any step runs. A stored run
is resumed through taskflow's own loader (``engines.flow_from_detail`` and
the factory details the run keeps), as a jobboard conductor would load it;
the installed code must still build the graph the run was made with. The
engine is taskflow's serial one, its storage :mod:`imagepipe.runner.engine`'s.

Signals during a run are :mod:`imagepipe.runner.interrupts`'; reverts that
failed and the one-line errors of steps, :mod:`imagepipe.runner.reverts`'.
"""

import contextlib
import sys

from oslo_utils import uuidutils
from taskflow import engines
from taskflow import exceptions as tf_exceptions
from taskflow import states
from taskflow.types import failure

from imagepipe import exception
from imagepipe import stop
from imagepipe.runner import engine as run_engine
from imagepipe.runner import guards
from imagepipe.runner import interrupts
from imagepipe.runner import reverts
from imagepipe.runner import store

#: what the errors of taskflow's loader and of the factory are
NOT_REBUILT = (exception.ImagepipeError, ImportError, KeyError, TypeError,
               ValueError)


def abandon_hint(run_id):
    return f'abandon it with "imagepipe abandon {run_id}"'


def _not_rebuilt(fd, e):
    return exception.Refused(
        f'run {fd.uuid} cannot be rebuilt by the installed imagepipe '
        f'({type(e).__name__}: {e}): it cannot be resumed; '
        f'{abandon_hint(fd.uuid)}')


def check_graph(fd, flow):
    """Refuse ``flow`` unless it is the graph ``fd`` was made with."""
    stored = fd.meta.get('imagepipe', {}).get('fingerprint')
    if store.fingerprint(flow) != stored:
        raise exception.Refused(
            f'run {fd.uuid} was made by another version of the '
            f"{fd.meta.get('imagepipe', {}).get('release')} flow (graph "
            f'{stored}, now {store.fingerprint(flow)}): it cannot be '
            f'resumed safely; {abandon_hint(fd.uuid)}')
    return flow


def rebuild(fd):
    """The flow of a stored run, as taskflow's loader builds it from the
    stored factory details; refuses one whose graph changed."""
    try:
        flow = engines.flow_from_detail(fd)
    except NOT_REBUILT as e:
        raise _not_rebuilt(fd, e) from None
    return check_graph(fd, flow)


def load(runs, fd):
    """The engine of a stored run, its flow made by taskflow's loader.

    Refuses (nothing changed) a run whose graph changed or that the
    installed code cannot build.
    """
    try:
        engine = run_engine.load(engines.flow_from_detail(fd), fd,
                                 runs.backend)
        engine.compile()
    except NOT_REBUILT as e:
        raise _not_rebuilt(fd, e) from None
    check_graph(fd, flow_of(engine))
    return engine


def flow_of(engine):
    """The flow an engine runs (the root of its compiled hierarchy)."""
    engine.compile()
    return engine.compilation.hierarchy.item


#: what a run's meta tells of how its last drive ended
OUTCOME = ('finished', 'error', 'failed_step', 'revert_step', 'revert_error')


def execute(runs, fd, engine, listeners):
    """Run ``engine`` on ``fd`` (current, its locks held).

    Returns (state, step, error); a failed revert is recorded in the run's
    meta as ``revert_step`` and ``revert_error``.
    """
    reverts.retry_reverts(runs, fd)
    meta = fd.meta.get('imagepipe', {})
    if any(meta.get(key) is not None for key in OUTCOME):
        runs.update(fd, **dict.fromkeys(OUTCOME))  # of an earlier drive
    flow = flow_of(engine)
    raised = None
    with contextlib.ExitStack() as stack:
        for make in (reverts.KeepExecuted, interrupts.SuspendOnStop,
                     *listeners):
            stack.enter_context(make(engine))
        stack.enter_context(guards.suspend_on_lost_lock(engine, fd.uuid))
        with interrupts.suspend_on_signals(engine, fd.uuid) as caught:
            try:
                engine.run()
            except tf_exceptions.StorageFailure:
                raise  # the run database, not the run, failed
            except Exception as e:  # the engine reverted; report, not raise
                raised = failure.Failure.from_exception(e)
            if ((caught or stop.requested())
                    and engine.storage.get_flow_state() == states.SUSPENDED):
                for name in interrupts.forgive_interrupted(engine.storage,
                                                           flow):
                    print(f'imagepipe: step {name} was stopped as the run '
                          'suspended: it runs again on resume',
                          file=sys.stderr)
    fd = runs.reload(fd)
    step, error = reverts.failure_of(fd, flow)
    revert_step, revert_error = reverts.revert_failure_of(fd)
    if error is None and raised is not None and revert_error is None:
        error = reverts.error_line(raised)
    runs.update(fd, finished=store.now() if fd.state in store.FINISHED
                else None, error=error, failed_step=step,
                revert_step=revert_step, revert_error=revert_error)
    return fd.state, step, error


def _engine(runs, fd, flow):
    return run_engine.load(flow, fd, runs.backend)


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
        return (run_id,) + execute(runs, fd, _engine(runs, fd, flow),
                                    listeners)


def create(runs, kwargs, flow, lock_dir):
    """Store a new run of ``flow`` without driving it (a conductor will);
    its id. Refuses as :func:`start` does, nothing stored then."""
    run_id = uuidutils.generate_uuid()
    with (guards.instance_lock(kwargs, lock_dir),
          guards.run_lock(run_id, lock_dir)):
        guards.check_fresh(runs, flow, kwargs)
        runs.create(kwargs, flow, run_id)
    return run_id


def start_operation(runs, kwargs, flow, lock_dir, listeners=()):
    """Create a run of ``flow`` that builds no instance (a cache pass, a
    pre-cache) and drive it under its run lock only; (run id, state, step,
    error). Its steps take the image locks they need themselves."""
    run_id = uuidutils.generate_uuid()
    with guards.run_lock(run_id, lock_dir):
        fd = runs.create(kwargs, flow, run_id)
        return (run_id,) + execute(runs, fd, _engine(runs, fd, flow),
                                    listeners)


@contextlib.contextmanager
def driving(runs, fd, lock_dir):
    """Hold the locks of a stored run; yields it as stored now, its state
    repaired when a process stopped driving it in the middle. A run that
    builds no instance (an operation) is held by its run lock only, as
    :func:`start_operation` drives it."""
    kwargs = store.factory_kwargs(fd)
    with contextlib.ExitStack() as held:
        held.enter_context(guards.run_lock(fd.uuid, lock_dir))
        if not kwargs['request'].get('operation'):
            held.enter_context(guards.instance_lock(kwargs, lock_dir))
        yield _repair(runs, runs.reload(fd))


def _repair(runs, fd):
    """A run whose driver stopped while it suspended (a second signal) as
    if it had suspended: SUSPENDED, its stopped steps PENDING again."""
    if fd.state != states.SUSPENDING:
        return fd
    stopped = [ad for ad in fd if ad.state == states.FAILURE
               and ad.failure is not None and ad.failure.check(stop.Stopped)]
    for ad in stopped:
        ad.state, ad.intention, ad.failure = (states.PENDING, states.EXECUTE,
                                              None)
        ad.results = None
    if stopped:
        runs.save_steps(stopped)
    fd.state = states.SUSPENDED
    runs.update(fd)
    return fd


def _done(fd):
    meta = fd.meta.get('imagepipe', {})
    return fd.state, meta.get('failed_step'), meta.get('error')


def drive(runs, fd, flow, lock_dir, listeners=(), announce=None):
    """Run ``flow`` on ``fd``, a run just made of it; (state, step, error).

    ``listeners`` are callables taking the engine and returning a taskflow
    listener (a context manager). A failed run is reverted by the engine;
    the error is recorded in the run's meta. ``announce(fd)`` is called
    with the run as found, once it is to be driven.
    """
    with driving(runs, fd, lock_dir) as fd:
        if fd.state == states.SUCCESS:
            return _done(fd)
        if announce is not None:
            announce(fd)
        return execute(runs, fd, _engine(runs, fd, flow), listeners)


def resume(runs, fd, lock_dir, listeners=(), announce=None):
    """Continue a stored run; (flow, state, step, error).

    The run is read again once its locks are held, so a run another process
    finished meanwhile is not run again (flow None); the engine is loaded
    by :func:`load` (refused if the graph changed); a reverted run is
    retried only under :func:`~imagepipe.runner.guards.check_fresh`.
    """
    with driving(runs, fd, lock_dir) as fd:
        if fd.state == states.SUCCESS:
            return (None,) + _done(fd)
        engine = load(runs, fd)
        flow = flow_of(engine)
        if fd.state == states.REVERTED:
            guards.check_fresh(runs, flow, store.factory_kwargs(fd),
                               run_id=fd.uuid)
        if announce is not None:
            announce(fd)
        return (flow,) + execute(runs, fd, engine, listeners)
