"""Outages of what a conductor needs: the Redis server of its board and the
run database. A conductor lives through them instead of dying or logging a
traceback each time it looks.

One :class:`Outage` per server logs one warning as an outage starts (the
first failure that shows the server cannot be reached) and one line as it
ends (the first success after it), whichever thread sees them.

The board: taskflow's conductor loop logs a traceback for every failed
look at a board (twice a second while Redis is down), so :func:`guard`
makes the board's listing and claiming report the outage and answer "no
jobs" / "not claimed" instead; a job that finished while the board was down
is consumed or abandoned once it is back (:meth:`Outage.wait`), or it would
stay claimed until its claim expires and be run again.

The run database: a job whose run cannot reach it waits, its claim kept,
until it is back, then runs again from what the database holds
(:meth:`Outage.wait`).
"""

import logging
import threading

from taskflow import exceptions as tf_exceptions

LOG = logging.getLogger('imagepipe.conductor')

#: seconds between two tries of a server that is down
RETRY = 0.5


def root_cause(error):
    """The error under taskflow's and SQLAlchemy's wrapping."""
    while True:
        inner = getattr(error, 'cause', None) or error.__cause__
        if inner is None:
            return error
        error = inner


def first_line(error):
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class Outage:
    """Whether ``what`` (as the log names it) is down, told once a time."""

    def __init__(self, what):
        self.what = what
        self._down = False
        self._guard = threading.Lock()

    def failed(self, error):
        with self._guard:
            was, self._down = self._down, True
        if not was:
            LOG.warning('%s is unreachable (%s): retrying', self.what,
                        first_line(root_cause(error)).rstrip('.'))

    def ok(self):
        with self._guard:
            was, self._down = self._down, False
        if was:
            LOG.info('%s is reachable again', self.what)

    def wait(self, probe, errors, stopping):
        """Try ``probe`` until it raises none of ``errors`` or the event
        ``stopping`` is set, reporting the outage; True if it failed and
        then came back (an outage went by), False if it never failed or
        ``stopping`` was set first."""
        failed = False
        while True:
            error = raised(probe, errors)
            if error is None:
                self.ok()
                return failed
            self.failed(error)
            failed = True
            if stopping.wait(RETRY):
                return False


def raised(call, errors):
    """What ``call`` raised of ``errors``, None if it returned. (oslo.log
    adds the exception being handled to a warning: the outage is logged
    after the except block.)"""
    try:
        call()
    except errors as e:
        return e
    return None


def unreachable(error):
    """Whether a taskflow JobFailure is Redis failing, not a refusal."""
    import redis
    return (isinstance(error, tf_exceptions.JobFailure)
            and isinstance(root_cause(error), redis.RedisError))


def guard(board, outage):
    """Make ``board``'s listing and claiming (what taskflow's conductor
    loop calls) report an outage and carry on."""
    iterjobs, claim = board.iterjobs, board.claim

    def listed(*args, **kwargs):
        jobs = []
        error = raised(lambda: jobs.extend(iterjobs(*args, **kwargs)),
                        tf_exceptions.JobFailure)
        if error is None:
            outage.ok()
        elif unreachable(error):
            outage.failed(error)
        else:
            raise error
        return iter(jobs)

    def claimed(job, who, **kwargs):
        error = raised(lambda: claim(job, who, **kwargs),
                        tf_exceptions.JobFailure)
        if error is None:
            return
        if not unreachable(error):
            raise error
        outage.failed(error)
        raise tf_exceptions.UnclaimableJob(
            f'job {job.uuid} not claimed: the board is unreachable')

    board.iterjobs, board.claim = listed, claimed
