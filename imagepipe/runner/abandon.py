"""Getting out of a run for good: abandon it, or forget a finished one.

``abandon`` reverts what a run made, as its failure would have: the engine
loaded as ``resume`` loads it gets the step the run was in marked failed
(the :class:`Abandoned` failure), and reverts every step that ran. A cache
entry published under ``_base`` stays, as Nova kept its bases; the
instance's own files go. A run the installed code cannot rebuild (an
upgrade changed its graph) is not given to code that no longer matches it:
the files it recorded under its instance directory (the results of its
steps, and the files the plan of the installed code would create there,
with their temporary names) are removed instead. Either way the run ends
REVERTED, so a new ``run`` of the instance is accepted.
"""

import os

from taskflow import states
from taskflow.types import failure

from imagepipe import exception
from imagepipe import flows
from imagepipe.runner import driver
from imagepipe.runner import guards
from imagepipe.runner import interrupts
from imagepipe.runner import store
from imagepipe.tasks import safefs

#: temporary names a step gives a file before it is complete
TEMPORARY = ('.tmp', '.part', '.converted')


class Abandoned(exception.ImagepipeError):
    """The failure a step is given so that the run reverts."""


def refuse_finished(fd, doing):
    state = store.state_of(fd)
    if state in store.FINISHED:
        raise exception.Refused(
            f'run {fd.uuid} is {state}: it is finished, there is nothing '
            f'to {doing}; forget it with "imagepipe forget {fd.uuid}"')


def abandon(runs, fd, lock_dir, listeners=()):
    """Revert ``fd`` and mark it finished; (state, step, error, removed).

    ``removed`` lists the files removed without the engine (None when the
    engine reverted the run). Refused while another process drives it, or
    when it is finished already.
    """
    with driver.driving(runs, fd, lock_dir) as fd:
        refuse_finished(fd, 'abandon')
        try:
            engine = driver.load(runs, fd)
        except exception.Refused:
            removed = _remove_recorded(fd)
            fd.state = states.REVERTED
            runs.update(fd, finished=store.now(), abandoned=True,
                        error='abandoned; its graph could not be rebuilt, '
                        'the files it recorded were removed')
            return fd.state, None, None, removed
        _fail_current(engine)
        state, step, error = driver.execute(runs, fd, engine, listeners)
        runs.update(runs.reload(fd), abandoned=True)
        return state, step, error, None


def _fail_current(engine):
    """Mark the step the run is in failed, unless a revert has begun."""
    engine.prepare()
    names = [a.name for a in store.atoms(driver.flow_of(engine))]
    found = {n: engine.storage.get_atom_state(n) for n in names}
    if any(s in interrupts.REVERTING for s in found.values()):
        return
    current = next((n for n in names if found[n] != states.SUCCESS),
                   names[-1])
    engine.storage.save(current, failure.Failure.from_exception(
        Abandoned('abandoned by "imagepipe abandon"')), states.FAILURE)


def _paths(value, inside):
    if isinstance(value, str):
        if value.startswith(inside):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _paths(item, inside)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _paths(item, inside)


def recorded_files(fd):
    """The files under the run's instance directory its steps recorded or
    the installed code's plan creates, with their temporary names."""
    kwargs = store.factory_kwargs(fd)
    inside = store.instance_dir(kwargs) + os.sep
    found = []
    for ad in fd:
        found += _paths(ad.results, inside)
    try:
        found += guards.instance_files(flows.factory(**kwargs), kwargs)
    except driver.NOT_REBUILT:
        pass
    found = [p for p in found if p.startswith(inside)]
    return sorted({p + suffix for p in found for suffix in ('',) + TEMPORARY})


def _remove_recorded(fd):
    removed = []
    for path in recorded_files(fd):
        if os.path.lexists(path):
            safefs.remove(path)
            removed.append(path)
    return removed


def forget(runs, fd, lock_dir):
    """Remove a finished run's record; refused for an unfinished one.

    Only the run's lock is taken: another run of its instance may go on.
    """
    with guards.run_lock(fd.uuid, lock_dir):
        fd = runs.reload(fd)
        if store.state_of(fd) not in store.FINISHED:
            raise exception.Refused(
                f'run {fd.uuid} is unfinished ({store.state_of(fd)}): '
                f'continue it with "imagepipe resume {fd.uuid}" or abandon '
                f'it with "imagepipe abandon {fd.uuid}" first')
        runs.remove(fd)
