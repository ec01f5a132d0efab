"""A host's conductor: taskflow's nonblocking conductor, each job driven by
:func:`imagepipe.runner.driver.resume`.

Why the nonblocking conductor: it claims up to ``max_concurrent_jobs`` jobs
and runs each in a thread of its executor, so a long download does not hold
up a warm boot behind it, in one process whose imports and database
connection are paid once. Its ``_dispatch_job`` is replaced: a job is not
run by an engine the conductor loads, but exactly as ``imagepipe resume``
runs a stored run (the same loader, graph fingerprint, run and instance
locks, refusals), the job carrying only the run id.

Claims expire (``[jobboard] expiration_time``; taskflow's conductor claims
without expiry, so a dead conductor's jobs would stay claimed forever) and
a heartbeat thread renews the claim of every job running here each quarter
of it, so a long step is never stolen. A job whose claim is lost anyway has
its engine suspended; the run lock keeps a second driver out meanwhile.

A job ends as taskflow's conductor ends it: consumed once its run finished
(succeeded, reverted, or failed to revert: ``runs`` and ``show`` tell), or
could never run (no run id, no such run, a graph that changed); abandoned
(left on the board for the next claim) when its run suspended, when another
process drives the run, or when the run database failed.
"""

import functools
import logging
import threading

from taskflow import exceptions as tf_exceptions
from taskflow import states
from taskflow.conductors.backends import impl_nonblocking
from taskflow.listeners import base as tf_listeners

from imagepipe import exception
from imagepipe import stop
from imagepipe.fleet import board as boards
from imagepipe.fleet import wakeup
from imagepipe.runner import driver
from imagepipe.runner import guards
from imagepipe.runner import interrupts
from imagepipe.tasks import locks

LOG = logging.getLogger('imagepipe.conductor')


class _Tracked(tf_listeners.Listener):
    """Keeps the engine of a running job where SIGTERM can suspend it."""

    def __init__(self, engine, conductor, job):
        super().__init__(engine, task_listen_for=(), flow_listen_for=())
        self._conductor, self._job = conductor, job

    def register(self):
        super().register()
        with self._conductor.guard:
            self._conductor.engines[self._job.uuid] = self._engine

    def deregister(self):
        with self._conductor.guard:
            self._conductor.engines.pop(self._job.uuid, None)
        super().deregister()


class RunConductor(impl_nonblocking.NonBlockingConductor):
    def __init__(self, name, board, run_store, lock_dir, settings):
        super().__init__(name, board, persistence=run_store.backend,
                         engine='serial',
                         max_simultaneous_jobs=settings.max_jobs)
        self._runs, self._lock_dir = run_store, lock_dir
        self._expiration = settings.expiration
        board.claim = functools.partial(board.claim,
                                        expiry=settings.expiration)
        self.guard = threading.Lock()
        self.engines = {}
        self._beating = threading.Event()
        self._wait_timeout = wakeup.Wakeup(settings, settings.host)

    # -- running a job -------------------------------------------------------

    def _dispatch_job(self, job):
        """Drive the job's run; True to consume the job, False to leave it."""
        try:
            return self._drive(job)
        finally:
            locks.release_owned()

    def _drive(self, job):
        run_id = boards.run_of(job)
        if run_id is None:
            LOG.error('job %s: no run id in its details %.200r: consumed',
                      job.uuid, job.details)
            return True
        try:  # its steps are read once its locks are held
            fd = self._runs.get(run_id, steps=False)
        except (exception.ImagepipeError, tf_exceptions.NotFound):
            LOG.error('job %s: run %s is not in the run database: consumed',
                      job.uuid, run_id)
            return True
        LOG.info('run %s: started (job %s)', run_id, job.uuid)
        try:
            _, state, step, error = driver.resume(
                self._runs, fd, self._lock_dir,
                listeners=[functools.partial(_Tracked, conductor=self,
                                             job=job)])
        except exception.Refused as e:
            busy = guards.is_active(run_id, self._lock_dir)
            LOG.error('run %s: refused: %s: %s', run_id, e,
                      'left on the board' if busy else 'consumed')
            return not busy
        except (exception.DatabaseUnusable, tf_exceptions.StorageFailure,
                interrupts.Interrupted) as e:
            LOG.error('run %s: stopped: %s: left on the board', run_id, e)
            return False
        where = f' at step {step}' if step else ''
        outcome = f': {error}' if error else ''
        if state == states.SUSPENDED:
            LOG.info('run %s: SUSPENDED%s: left on the board', run_id, where)
            return False
        LOG.info('run %s: %s%s%s', run_id, state, where, outcome)
        return True

    def _on_job_done(self, job, fut):
        super()._on_job_done(job, fut)
        self._wait_timeout.poke()  # a slot is free: look at the board now

    # -- the claims ----------------------------------------------------------

    def heartbeat(self):
        """Renew the claims of the jobs running here until :meth:`stop`."""
        while not self._beating.wait(self._expiration / 4):
            for fut in list(self._dispatched):
                job = getattr(fut, 'job', None)
                if job is not None and not fut.done():
                    self._renew(job)

    def _renew(self, job):
        try:
            kept = (boards.owner(self._jobboard, job) == self._name
                    and job.extend_expiry(self._expiration))
        except tf_exceptions.JobFailure as e:
            LOG.warning('job %s: claim not renewed: %s', job.uuid, e)
            return
        if not kept:
            LOG.error('job %s: claim lost: its run suspends', job.uuid)
            with self.guard:
                engine = self.engines.get(job.uuid)
            if engine is not None:
                engine.suspend()

    # -- stopping ------------------------------------------------------------

    def stop(self):
        """Claim no more; suspend the running jobs (their steps stop now)."""
        super().stop()
        self._beating.set()
        stop.request()
        with self.guard:
            running = list(self.engines.values())
        for engine in running:
            threading.Thread(target=engine.suspend, daemon=True).start()
