"""Signals during a run: the first suspends it now, a second stops at once.

SIGINT and SIGTERM ask the step in progress to stop (:mod:`imagepipe.stop`);
the step fails with :class:`~imagepipe.stop.Stopped`, :class:`SuspendOnStop`
suspends the engine before it can revert, and :func:`forgive_interrupted`
makes the failed step run again on resume.
"""

import contextlib
import signal
import sys
import threading

from taskflow import states
from taskflow.listeners import base as tf_listeners

from imagepipe import stop
from imagepipe.runner import store


class Interrupted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: stop now, as a crash would."""


@contextlib.contextmanager
def suspend_on_signals(engine, run_id, out=None):
    """SIGINT and SIGTERM suspend the engine now.

    The step in progress is asked to stop (:mod:`imagepipe.stop`): it fails
    within a fraction of a second with :class:`~imagepipe.stop.Stopped`,
    :class:`SuspendOnStop` suspends the engine before it reverts, and
    :func:`forgive_interrupted` makes the step run again on resume. A
    second signal stops at once (:class:`Interrupted`), as a crash would:
    the run is left RUNNING or SUSPENDING, which ``resume`` continues.
    Yields the list of the signals caught.

    Off the main thread (a conductor's job), where Python allows no signal
    handler, nothing is installed: the process's own handler requests the
    stop and suspends the engine.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    out = out or sys.stderr
    caught = []
    suspenders = []

    def handler(signum, frame):
        caught.append(signum)
        if len(caught) > 1:
            raise Interrupted()
        print(f'imagepipe: {signal.Signals(signum).name}: run {run_id} '
              'suspends now, its current step to run again on resume '
              '(again to stop at once)', file=out, flush=True)
        stop.request()
        # Not in the handler itself: the signal may have stopped this
        # thread inside a write to the run database, whose lock suspend()
        # needs too. That lock is held while a step runs: the step that
        # stops is failed by :class:`SuspendOnStop`, before any revert.
        suspender = threading.Thread(target=engine.suspend, daemon=True)
        suspender.start()
        suspenders.append(suspender)

    saved = {s: signal.signal(s, handler)
             for s in (signal.SIGINT, signal.SIGTERM)}
    stop.clear()
    try:
        yield caught
    finally:
        for suspender in suspenders:
            suspender.join()
        for s, h in saved.items():
            signal.signal(s, h)
        stop.clear()


class SuspendOnStop(tf_listeners.Listener):
    """A step that fails once a stop is requested suspends the engine.

    Called in the engine's thread as the failure is stored (the engine's
    storage lock is held then, and reentrant), so the engine suspends
    instead of reverting: :func:`forgive_interrupted` makes the step run
    again on resume.
    """

    def __init__(self, engine):
        super().__init__(engine, task_listen_for=(states.FAILURE,),
                         flow_listen_for=())

    def _task_receiver(self, state, details):
        if stop.requested():
            self._engine.suspend()


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


