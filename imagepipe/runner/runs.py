"""Runs: a release flow executed durably, listed, shown and resumed.

A run is one taskflow flow detail (its UUID is the run id) in a logbook of
its own. Its meta holds the factory and its JSON arguments (taskflow's
factory details, so the same flow can be rebuilt on resume), a fingerprint
of the graph, and what ``runs`` lists.

Who may drive what:

- one process at a time drives a run: an external lock per run id;
- one run at a time builds an instance: an external lock per instance
  directory, held by whoever drives a run of it;
- a run starts fresh (a new ``run``, or a reverted run retried) only when
  none of the instance's files it would create exists, and no other run of
  the instance is unfinished. Nova skipped an instance disk that existed;
  imagepipe refuses instead, so that a disk somebody else made (or that an
  earlier run left) is never overwritten nor adopted silently.

Everything that refuses to start or resume raises :class:`Refused` (exit
status 2) before any step runs and without changing the run.
"""

import contextlib
import datetime
import hashlib
import json
import os
import signal
import sys
import threading

from oslo_concurrency import lockutils
from oslo_utils import uuidutils
from taskflow import engines
from taskflow import flow as tf_flow
from taskflow import states
from taskflow.persistence import models
from taskflow.types import failure

from imagepipe import exception
from imagepipe import flows

#: states after which a run needs no resume (REVERTED may be retried)
FINISHED = (states.SUCCESS, states.REVERTED)

#: files an instance keeps that are records, not disks: their existence
#: does not stop a fresh run (diskinfo accepts a matching entry)
RECORDS = ('disk.info',)

LOCK_PREFIX = 'imagepipe-'


class Refused(exception.RunError):
    """A run was not started or resumed; nothing was done."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """A second SIGINT or SIGTERM: stop now, as a crash would."""


def atoms(flow):
    """The atoms of ``flow`` in order, nested flows walked."""
    for item in flow:
        if isinstance(item, tf_flow.Flow):
            yield from atoms(item)
        else:
            yield item


def fingerprint(flow):
    """A hash of what makes the graph: each atom's name, class, version,
    wiring and injected arguments, in order.

    taskflow matches stored atoms by name only, so a resume by changed code
    would silently run a different graph on old results.
    """
    shape = [flow.name]
    for atom in atoms(flow):
        cls = type(atom)
        shape.append({
            'name': atom.name,
            'class': f'{cls.__module__}.{cls.__qualname__}',
            'version': '.'.join(map(str, atom.version)),
            'rebind': sorted(atom.rebind.items()),
            'provides': sorted(atom.provides),
            'inject': atom.inject,
        })
    blob = json.dumps(shape, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


def instance_dir(kwargs):
    """The instance directory a run's factory arguments build."""
    return os.path.join(kwargs['settings']['instances_path'],
                        kwargs['request']['instance'])


class RunStore:
    """Flow details in the run database, as runs."""

    def __init__(self, backend):
        self.backend = backend

    @contextlib.contextmanager
    def _conn(self):
        with contextlib.closing(self.backend.get_connection()) as conn:
            yield conn

    def create(self, kwargs, flow, run_id=None):
        """A new run of ``flow`` (built by flows.factory(**kwargs)): its
        flow detail, in a logbook of its own that names the instance."""
        request = kwargs['request']
        book = models.LogBook(f"imagepipe-{kwargs['release']}")
        book.meta = {'instance_dir': instance_dir(kwargs)}
        fd = models.FlowDetail(flow.name,
                               run_id or uuidutils.generate_uuid())
        book.add(fd)
        fd.meta = {'imagepipe': {
            'release': kwargs['release'], 'image': request['image'],
            'instance': request['instance'],
            'instance_dir': instance_dir(kwargs),
            'fingerprint': fingerprint(flow),
            'started': now(), 'finished': None, 'error': None,
            'failed_step': None}}
        with self._conn() as conn:
            conn.save_logbook(book)
        engines.save_factory_details(fd, flows.FACTORY, [], kwargs,
                                     backend=self.backend)
        return fd

    def all(self):
        """The flow detail of every run, without the run's steps.

        A listing and the check before a fresh run need no more; loading
        every step of every run ever kept grew with each run. :meth:`get`
        reads one run whole.
        """
        with self._conn() as conn:
            return [fd for b in conn.get_logbooks(lazy=True)
                    if b.name.startswith('imagepipe-')
                    for fd in conn.get_flows_for_book(b.uuid, lazy=True)]

    def of_instance(self, directory):
        """The flow details of the runs of the instance in ``directory``.

        A run's logbook names its instance directory, so the steps of the
        other runs, and their rows, are not read (the check before every
        fresh run would otherwise grow with every run kept). A logbook that
        names none (stored by imagepipe 0.1.0 before) counts as a candidate.
        """
        with self._conn() as conn:
            return [fd for b in conn.get_logbooks(lazy=True)
                    if b.name.startswith('imagepipe-')
                    and (b.meta or {}).get('instance_dir',
                                           directory) == directory
                    for fd in conn.get_flows_for_book(b.uuid, lazy=True)]

    def find(self, run_id):
        """The flow detail of a run id, or of its unique prefix, whole."""
        matches = [fd for fd in self.all() if fd.uuid.startswith(run_id)]
        if len(matches) != 1:
            why = 'no run' if not matches else 'more than one run'
            raise Refused(f'{why} matches {run_id!r}')
        return self.get(matches[0].uuid)

    def get(self, run_id):
        """The flow detail of a full run id, as stored now."""
        with self._conn() as conn:
            return conn.get_flow_details(run_id)

    def reload(self, fd):
        return self.get(fd.uuid)

    def update(self, fd, **values):
        """Merge ``values`` into the run's meta; its steps are not written.

        Only the run's own row changes (state and meta, from ``fd``), so
        ``fd`` must hold the current state: reload it first unless this
        process is the one driving it.
        """
        fd.meta.setdefault('imagepipe', {}).update(values)
        head = models.FlowDetail(fd.name, fd.uuid)
        head.state = fd.state
        head.meta = fd.meta
        with self._conn() as conn:
            conn.update_flow_details(head)


def factory_kwargs(fd):
    return fd.meta['factory']['kwargs']


def state_of(fd):
    """The run's state; a run killed before its engine started is PENDING."""
    return fd.state or states.PENDING


def rebuild(fd):
    """The flow of a stored run; refuses one whose graph changed."""
    try:
        kwargs = factory_kwargs(fd)
        flow = flows.factory(**kwargs)
    except (exception.ImagepipeError, KeyError, TypeError, ValueError) as e:
        raise Refused(
            f'run {fd.uuid} cannot be rebuilt by the installed imagepipe '
            f'({type(e).__name__}: {e}): it cannot be resumed') from None
    stored = fd.meta.get('imagepipe', {}).get('fingerprint')
    if fingerprint(flow) != stored:
        raise Refused(
            f'run {fd.uuid} was made by another version of the '
            f"{kwargs['release']} flow (graph {stored}, now "
            f'{fingerprint(flow)}): it cannot be resumed safely')
    return flow


def _try_lock(name, lock_dir, busy):
    lock = lockutils.external_lock(name, LOCK_PREFIX, lock_dir)
    if not lock.acquire(blocking=False):
        raise Refused(busy)
    return lock


@contextlib.contextmanager
def run_lock(run_id, lock_dir):
    """Only one process drives a run."""
    lock = _try_lock(f'run-{run_id}', lock_dir,
                     f'run {run_id} is being driven by another process')
    try:
        yield
    finally:
        lock.release()


def _instance_lock_name(directory):
    digest = hashlib.sha1(directory.encode()).hexdigest()[:16]
    return f'instance-{os.path.basename(directory)}-{digest}'


@contextlib.contextmanager
def instance_lock(kwargs, lock_dir):
    """Only one run at a time builds an instance."""
    directory = instance_dir(kwargs)
    lock = _try_lock(
        _instance_lock_name(directory), lock_dir,
        f"instance {kwargs['request']['instance']} ({directory}) is being "
        'built by another process')
    try:
        yield
    finally:
        lock.release()


def is_active(run_id, lock_dir):
    """True while some process holds the run's lock (drives it)."""
    lock = lockutils.external_lock(f'run-{run_id}', LOCK_PREFIX, lock_dir)
    if not lock.acquire(blocking=False):
        return True
    lock.release()
    return False


def instance_files(flow, kwargs):
    """The instance's own files (disks, devices) ``flow`` would create."""
    inside = instance_dir(kwargs) + os.sep
    found = []
    for atom in atoms(flow):
        describe = getattr(atom, 'describe', None)
        if describe is None:
            continue
        for path in describe().get('creates', ()):
            mine = path.startswith(inside) or path.startswith('/dev/')
            if (mine and os.path.basename(path) not in RECORDS
                    and path not in found):
                found.append(path)
    return found


def check_fresh(store, flow, kwargs, run_id=None):
    """Refuse a fresh start over an instance that has disks or another run.

    Call it holding the instance lock.
    """
    name = kwargs['request']['instance']
    existing = [p for p in instance_files(flow, kwargs)
                if os.path.lexists(p)]
    if existing:
        raise Refused(
            f'instance {name} already has {existing[0]}: imagepipe does not '
            'overwrite an existing disk (Nova skipped it); remove it or '
            'choose another instance name')
    directory = instance_dir(kwargs)
    for fd in store.of_instance(directory):
        if fd.uuid == run_id or state_of(fd) in FINISHED:
            continue
        meta = fd.meta.get('imagepipe', {})
        other = meta.get('instance_dir')
        if other is None:  # a run stored before instance_dir was recorded
            other = instance_dir(factory_kwargs(fd))
        if other == directory:
            raise Refused(
                f'instance {name} has an unfinished run {fd.uuid} '
                f'({state_of(fd)}): continue it with "imagepipe resume '
                f'{fd.uuid}"')


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
    names = [atom.name for atom in atoms(flow)]
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


def failure_of(fd, flow=None):
    """(step name, one-line error) of the step that failed, if any.

    The step whose execute failed comes first (in flow order when ``flow``
    is given); a failed revert is reported when no execute failure is left.
    """
    details = list(fd)
    if flow is not None:
        order = {a.name: i for i, a in enumerate(atoms(flow))}
        details.sort(key=lambda ad: order.get(ad.name, len(order)))
    for ad in details:
        if ad.failure is not None:
            return ad.name, error_line(ad.failure)
    for ad in details:
        revert_failure = getattr(ad, 'revert_failure', None)
        if revert_failure is not None:
            return ad.name, f'revert failed: {error_line(revert_failure)}'
    return None, None


def error_line(failure):
    """Our errors read as they are; anything else names its type."""
    text = failure.exception_str.strip().splitlines()
    text = text[0] if text else ''
    if failure.check(exception.ImagepipeError):
        return text
    return f'{next(iter(failure))}: {text}'


def _execute(store, fd, flow, listeners):
    """Run the engine on ``fd`` (current, its locks held)."""
    store.update(fd, finished=None, error=None, failed_step=None)
    engine = engines.load(flow, flow_detail=fd, backend=store.backend,
                          engine='serial')
    raised = None
    with contextlib.ExitStack() as stack:
        for make in listeners:
            stack.enter_context(make(engine))
        with suspend_on_signals(engine, fd.uuid) as caught:
            try:
                engine.run()
            except Exception as e:  # the engine reverted; report, not raise
                raised = failure.Failure.from_exception(e)
            if caught and engine.storage.get_flow_state() == states.SUSPENDED:
                for name in forgive_interrupted(engine.storage, flow):
                    print(f'imagepipe: step {name} failed as the run was '
                          'suspending: it runs again on resume',
                          file=sys.stderr)
    fd = store.reload(fd)
    step, error = failure_of(fd, flow)
    if error is None and raised is not None:
        error = error_line(raised)
    store.update(fd, finished=now() if fd.state in FINISHED else None,
                 error=error, failed_step=step)
    return fd.state, step, error


def start(store, kwargs, flow, lock_dir, listeners=(), announce=None):
    """Create a run of ``flow`` and drive it; (run id, state, step, error).

    Refuses (:class:`Refused`, nothing stored) when the instance is being
    built, has one of the disks the flow would create, or has an unfinished
    run. ``announce(run_id)`` is called once the run exists, before any step.
    """
    run_id = uuidutils.generate_uuid()
    with instance_lock(kwargs, lock_dir), run_lock(run_id, lock_dir):
        check_fresh(store, flow, kwargs)
        fd = store.create(kwargs, flow, run_id)
        if announce is not None:
            announce(run_id)
        return (run_id,) + _execute(store, fd, flow, listeners)


def drive(store, fd, flow, lock_dir, listeners=(), announce=None):
    """Run or resume ``flow`` on ``fd``; return (state, step, error).

    ``listeners`` are callables taking the engine and returning a taskflow
    listener (a context manager). A failed run is reverted by the engine;
    the error is recorded in the run's meta. The run is read again once its
    locks are held, so a run another process finished meanwhile is not run
    again; a reverted run is retried only under :func:`check_fresh`.
    ``announce(fd)`` is called with the run as found, once it is to be
    driven.
    """
    kwargs = factory_kwargs(fd)
    with run_lock(fd.uuid, lock_dir), instance_lock(kwargs, lock_dir):
        fd = store.reload(fd)
        if fd.state == states.SUCCESS:
            meta = fd.meta.get('imagepipe', {})
            return fd.state, meta.get('failed_step'), meta.get('error')
        if fd.state == states.REVERTED:
            check_fresh(store, flow, kwargs, run_id=fd.uuid)
        if announce is not None:
            announce(fd)
        return _execute(store, fd, flow, listeners)
