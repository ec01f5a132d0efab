"""Reverts that fail, and the one-line errors of a run's steps.

A revert that fails leaves the run in FAILURE with the failed step in
REVERT_FAILURE: taskflow would count that step as done on resume and call
the run REVERTED without undoing it. Such steps are put back to REVERTING
before a resume (:func:`retry_reverts`), with the result their execute had
(kept in the step's meta by :class:`KeepExecuted` when its revert began,
since taskflow drops it on REVERT_FAILURE), so a resume finishes the revert
once its obstacle is gone.
"""

from taskflow import states
from taskflow.listeners import base as tf_listeners
from taskflow.types import failure

from imagepipe import exception
from imagepipe.runner import store

#: the step meta key holding what a step's execute returned, once its
#: revert began
EXECUTED = 'executed'


class KeepExecuted(tf_listeners.Listener):
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


