"""The engine that drives a run: taskflow's serial engine, whose storage
writes a step's progress and duration with the step's state saves.

taskflow stores every progress value on its own: the 0.0 and 1.0 the
engine sets as each step starts and ends, and each report of a step (at
most one every :data:`imagepipe.tasks.contract.PROGRESS_INTERVAL`); its
DurationListener stores each step's duration on its own after the step
ended. That made five transactions of a seven-millisecond step's six, half
of a warm boot's run database time through a conductor. Here a step's
progress is kept in memory and goes to the database with the step's next
state save (the 0.0 with RUNNING or REVERTING, the 1.0 with SUCCESS) or,
for a step that runs long, on its own at most once every
:data:`SAVE_EVERY` seconds; its duration (from RUNNING or REVERTING to the
state that ends it) goes with the state that ends it. A crash forgets at
most that long of a step's progress; the step runs again on resume anyway.

A change of the run's own state (RUNNING, SUCCESS...) writes the run's row
alone: taskflow's save of it read the run and all its steps back and
rewrote those the merge changed, which under the run's lock are none (a
step's unsaved progress goes with the step's next save, as above).
"""

import time

import fasteners
from taskflow import exceptions
from taskflow import states
from taskflow import storage
from taskflow.engines.action_engine import engine as action_engine
from taskflow.persistence import models
from taskflow.utils import misc
import tenacity

#: seconds between two progress values of one step stored on their own
SAVE_EVERY = 1.0


class RunStorage(storage.Storage):
    """taskflow's storage, a step's progress written as said above."""

    def __init__(self, flow_detail, backend=None, scope_fetcher=None):
        super().__init__(flow_detail, backend=backend,
                         scope_fetcher=scope_fetcher)
        self._started = {}    # step name -> when it started running
        self._stored_at = {}  # step name -> when its row was last written

    def _keep(self, name, values):
        """A step's meta ``values`` in memory, for its next save."""
        source, _ = self._atomdetail_by_name(name)
        if isinstance(source, models.TaskDetail):
            source.meta.update(values)

    @fasteners.write_locked
    def set_atom_state(self, atom_name, state):
        if state in (states.RUNNING, states.REVERTING):
            self._keep(atom_name, {storage.META_PROGRESS: 0.0})
            self._started[atom_name] = self._stored_at[atom_name] = (
                time.monotonic())
        super().set_atom_state(atom_name, state)

    @fasteners.write_locked
    def save(self, atom_name, result, state=states.SUCCESS):
        values = ({storage.META_PROGRESS: 1.0} if state == states.SUCCESS
                  else {})
        started = self._started.pop(atom_name, None)
        if started is not None:
            values['duration'] = time.monotonic() - started
        self._keep(atom_name, values)
        super().save(atom_name, result, state)

    @fasteners.write_locked
    def set_flow_state(self, state):
        source, clone = self._fetch_flowdetail(clone=True)
        clone.state = state
        self._with_connection(self._save_flow_head, clone)
        source.state = state

    @tenacity.retry(  # as taskflow retries its own saves
        retry=tenacity.retry_if_exception_type(exceptions.StorageFailure),
        stop=tenacity.stop_after_attempt(storage.RETRY_ATTEMPTS),
        wait=tenacity.wait_fixed(storage.RETRY_WAIT_TIMEOUT), reraise=True)
    def _save_flow_head(self, conn, flow_detail):
        conn.update_flow_head(flow_detail)

    def set_task_progress(self, task_name, progress, details=None):
        now = time.monotonic()
        with self._lock.write_lock():
            due = (now - self._stored_at.get(task_name, now)) >= SAVE_EVERY
            if not due:
                source, _ = self._atomdetail_by_name(
                    task_name, expected_type=models.TaskDetail)
                source.meta[storage.META_PROGRESS] = progress
                if details is not None:
                    source.meta[storage.META_PROGRESS_DETAILS] = (
                        {'at_progress': progress, 'details': details}
                        if details else None)
                return
            self._stored_at[task_name] = now
        super().set_task_progress(task_name, progress, details=details)


class SerialEngine(action_engine.SerialActionEngine):
    """taskflow's serial engine on a :class:`RunStorage`."""

    @misc.cachedproperty
    def storage(self):
        def _scope_fetcher(atom_name):
            if self._compiled:
                return self._runtime.fetch_scopes_for(atom_name)
            return None

        return RunStorage(self._flow_detail, backend=self._backend,
                          scope_fetcher=_scope_fetcher)


def load(flow, flow_detail, backend):
    """The engine of ``flow`` on ``flow_detail`` (what ``taskflow.engines.
    load`` makes of the serial engine, on a :class:`RunStorage`)."""
    return SerialEngine(flow, flow_detail, backend, {})
