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
process drives the run, or when the run database failed without an outage.
Outages of the board or the run database are waited out
(:mod:`imagepipe.fleet.outages`).
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
from imagepipe.fleet import outages
from imagepipe.fleet import wakeup
from imagepipe.runner import driver
from imagepipe.runner import interrupts
from imagepipe.tasks import locks

LOG = logging.getLogger('imagepipe.conductor')

#: seconds between two tries of a job whose run another process drives
#: (its claim renewed meanwhile)
BUSY_RETRY = 2.0

#: how a run database that went away shows
_DATABASE_DOWN = (exception.DatabaseUnusable, tf_exceptions.StorageFailure)


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
        self._board_down = outages.Outage(
            f'the jobboard {boards.shown(settings.url)}')
        outages.guard(board, self._board_down)
        self._db_down = outages.Outage('the run database')
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
        first_wait = True
        while True:
            try:
                return self._drive_run(job, run_id)
            except exception.Busy as e:
                if not self._waited_for_other(run_id, e, first_wait):
                    return False
                first_wait = False
                continue
            except _DATABASE_DOWN as e:
                error = e
            # waits (the claim renewed) while the database is down, then
            # runs again from what it holds; a failure that is not an
            # outage leaves the job for later
            if not self._db_down.wait(lambda: self._runs.get(run_id),
                                      _DATABASE_DOWN, self._beating):
                LOG.error('run %s: stopped: %s: left on the board', run_id,
                          error)
                return False

    def _waited_for_other(self, run_id, busy, first):
        """Another process drives the run (``imagepipe resume``, or a
        conductor whose claim expired while it lived): keep the job, its
        claim renewed, and try again in a while; False if this conductor
        stops meanwhile (the job is left on the board)."""
        if first:
            LOG.info('run %s: %s: the job waits for it', run_id, busy)
        if self._beating.wait(BUSY_RETRY):
            LOG.info('run %s: still busy as the conductor stops: left on '
                     'the board', run_id)
            return False
        return True

    def _drive_run(self, job, run_id):
        try:  # its steps are read once its locks are held
            fd = self._runs.get(run_id, steps=False)
        except tf_exceptions.NotFound:
            LOG.error('job %s: run %s is not in the run database: consumed',
                      job.uuid, run_id)
            return True
        try:
            _, state, step, error = driver.resume(
                self._runs, fd, self._lock_dir,
                listeners=[functools.partial(_Tracked, conductor=self,
                                             job=job)],
                announce=lambda fd: LOG.info('run %s: started (job %s)',
                                             fd.uuid, job.uuid))
        except exception.Busy:
            raise
        except exception.Refused as e:
            LOG.error('run %s: refused: %s: consumed', run_id, e)
            return True
        except interrupts.Interrupted as e:
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
        kept = []

        def extend():
            kept.append(boards.owner(self._jobboard, job) == self._name
                        and job.extend_expiry(self._expiration))
        error = outages.raised(extend, tf_exceptions.JobFailure)
        if error is not None:
            if outages.unreachable(error):
                self._board_down.failed(error)
            else:
                LOG.warning('job %s: claim not renewed: %s', job.uuid, error)
            return
        self._board_down.ok()
        if not kept[0]:
            LOG.error('job %s: claim lost: its run suspends', job.uuid)
            with self.guard:
                engine = self.engines.get(job.uuid)
            if engine is not None:
                engine.suspend()

    def _try_finish_job(self, job, consume, trash=False):
        """taskflow's, once the board can be reached: a job finished while
        it was down would stay claimed until its claim expires."""
        self._board_down.wait(lambda: self._jobboard.job_count,
                              tf_exceptions.JobFailure, self._beating)
        super()._try_finish_job(job, consume, trash)

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
