"""Pre-caching on many hosts, a few at a time, through their boards.

As Nova's conductor (nova/conductor/manager.py@33.0.2 cache_images) called
each host through an executor of ``[image_cache] precache_concurrency``
workers, at most that many hosts have a pre-cache job on their board at
once; the next host's run is stored and its job posted only when one of
them is done. Each job carries only its run id, like a boot's, and the
host's conductor drives the run as it drives any stored run.

A host whose job no conductor has claimed for ``timeout`` seconds in a row
(none runs there, or all of its slots stay busy) is an error. Its job is
then taken off the board, by claiming it here and consuming it, so no
conductor starting later pre-caches behind the command's back (as Nova
skipped a host that was down); a run that never started goes with it. A
job a conductor claims meanwhile is not taken: the command goes on waiting
for it.
"""

import contextlib
import dataclasses
import os
import socket
import time

from taskflow import exceptions as tf_exceptions

from imagepipe.cache import precache as precache_flow
from imagepipe.fleet import board as boards

#: seconds between two looks at the boards
POLL = 0.2

#: seconds the claim that takes a job off the board lasts (it is consumed
#: at once; the expiry only frees the job if this process dies between)
WITHDRAW_CLAIM = 30


def who():
    return f'precache.{socket.gethostname()}.{os.getpid()}'


@dataclasses.dataclass
class _Posted:
    host: str
    run: str
    board: object
    job: object
    closing: contextlib.ExitStack
    unclaimed_since: float


def _current(board, job):
    """The job as the board holds it now, None once it is gone."""
    for found in board.iterjobs(ensure_fresh=True):
        if found.uuid == job.uuid:
            return found
    return None


def _withdrawn(board, job):
    """Take an unclaimed job off the board; False if a conductor claimed
    it first."""
    try:
        board.claim(job, who(), expiry=WITHDRAW_CLAIM)
    except (tf_exceptions.UnclaimableJob, tf_exceptions.NotFound):
        return False
    board.consume(job, who())
    return True


class Hosts:
    """One pre-cache per host, ``concurrency`` hosts at a time.

    ``new_run()`` stores a new pre-cache run in ``store`` and returns its
    id; ``settings`` are the :class:`~imagepipe.fleet.board.Settings` of
    the boards.
    """

    def __init__(self, store, settings, new_run, concurrency, timeout):
        self._store, self._settings = store, settings
        self._new_run = new_run
        self._concurrency, self._timeout = concurrency, timeout

    def run(self, hosts):
        """{host: (status, run id, error)} once every host is done."""
        waiting, flying, done = list(hosts), [], {}
        try:
            while waiting or flying:
                while waiting and len(flying) < self._concurrency:
                    flying.append(self._post(waiting.pop(0)))
                for posted in list(flying):
                    outcome = self._look(posted)
                    if outcome is not None:
                        posted.closing.close()
                        flying.remove(posted)
                        done[posted.host] = (outcome[0], posted.run,
                                             outcome[1])
                if flying:
                    time.sleep(POLL)
        finally:
            for posted in flying:
                posted.closing.close()
        return done

    def _post(self, host):
        closing = contextlib.ExitStack()
        try:
            board = closing.enter_context(
                boards.opened(self._settings, host, who()))
            run_id = self._new_run()
            job = boards.post(board, run_id)
        except BaseException:
            closing.close()
            raise
        return _Posted(host, run_id, board, job, closing, time.monotonic())

    def _look(self, posted):
        """(status, error) once the host is done with its job, else None."""
        job = _current(posted.board, posted.job)
        if job is None:
            return self._outcome(posted)
        if boards.owner(posted.board, job) is not None:
            posted.unclaimed_since = time.monotonic()
            return None
        if time.monotonic() - posted.unclaimed_since <= self._timeout:
            return None
        if not _withdrawn(posted.board, job):
            posted.unclaimed_since = time.monotonic()
            return None
        fd = self._store.get(posted.run)
        kept = ''
        if fd.state is None:
            self._store.remove(fd)
            posted.run = None
        else:
            kept = f'; run {posted.run} ({fd.state}) can be resumed there'
        return 'error', (
            f'no conductor of host {posted.host} took its job within '
            f'{self._timeout:g}s: the job was taken off the board{kept}')

    def _outcome(self, posted):
        fd = self._store.get(posted.run)
        status, error = precache_flow.status(fd)
        if status is None:
            return 'error', (
                f'the job was taken off the board of host {posted.host} '
                f'with its run {fd.state or "never started"}: see the '
                "host's conductor log")
        return status, error
