"""Runs: a release flow executed durably, listed, shown and resumed.

A run is one taskflow flow detail (its UUID is the run id) in a logbook of
its own. Its meta holds the factory and its JSON arguments (taskflow's
factory details, so the same flow can be rebuilt on resume), a fingerprint
of the graph, and what ``runs`` lists. A run is driven by one process at a
time: an external lock per run id.
"""

import contextlib
import datetime
import hashlib
import json
import signal

from oslo_concurrency import lockutils
from oslo_utils import uuidutils
from taskflow import engines
from taskflow import states
from taskflow.persistence import models
from taskflow.types import failure

from imagepipe import exception
from imagepipe import flows

#: states after which a run needs no resume (REVERTED may be retried)
FINISHED = (states.SUCCESS, states.REVERTED)


def fingerprint(flow):
    """A hash of the atoms' names and versions, in order."""
    atoms = [[atom.name, '.'.join(map(str, atom.version))] for atom in flow]
    return hashlib.sha256(json.dumps(atoms).encode()).hexdigest()[:16]


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


class RunStore:
    """Flow details in the run database, as runs."""

    def __init__(self, backend):
        self.backend = backend

    @contextlib.contextmanager
    def _conn(self):
        with contextlib.closing(self.backend.get_connection()) as conn:
            yield conn

    def create(self, kwargs, flow):
        """A new run of ``flow`` (built by flows.factory(**kwargs))."""
        request = kwargs['request']
        book = models.LogBook(f"imagepipe-{kwargs['release']}")
        fd = models.FlowDetail(flow.name, uuidutils.generate_uuid())
        book.add(fd)
        fd.meta = {'imagepipe': {
            'release': kwargs['release'], 'image': request['image'],
            'instance': request['instance'], 'fingerprint': fingerprint(flow),
            'started': now(), 'finished': None, 'error': None}}
        with self._conn() as conn:
            conn.save_logbook(book)
        engines.save_factory_details(fd, flows.FACTORY, [], kwargs,
                                     backend=self.backend)
        return book, fd

    def books(self):
        with self._conn() as conn:
            return [b for b in conn.get_logbooks(lazy=False)
                    if b.name.startswith('imagepipe-')]

    def find(self, run_id):
        """(book, flow detail) of a run id, or of its unique prefix."""
        matches = [(b, fd) for b in self.books() for fd in b
                   if fd.uuid.startswith(run_id)]
        if len(matches) != 1:
            why = 'no run' if not matches else 'more than one run'
            raise exception.RunError(f'{why} matches {run_id!r}')
        return matches[0]

    def reload(self, fd):
        with self._conn() as conn:
            return conn.get_flow_details(fd.uuid)

    def update(self, fd, **values):
        fd.meta['imagepipe'].update(values)
        with self._conn() as conn:
            conn.update_flow_details(fd)


def factory_kwargs(fd):
    return fd.meta['factory']['kwargs']


def rebuild(fd):
    """The flow of a stored run; refuses one whose graph changed."""
    flow = flows.factory(**factory_kwargs(fd))
    stored = fd.meta['imagepipe']['fingerprint']
    if fingerprint(flow) != stored:
        raise exception.RunError(
            f'run {fd.uuid} was made by another version of the '
            f"{fd.meta['imagepipe']['release']} flow (graph {stored}, now "
            f'{fingerprint(flow)}): it cannot be resumed safely')
    return flow


@contextlib.contextmanager
def run_lock(run_id, lock_dir):
    """Only one process drives a run."""
    lock = lockutils.external_lock(f'run-{run_id}', 'imagepipe-', lock_dir)
    if not lock.acquire(blocking=False):
        raise exception.RunError(
            f'run {run_id} is being driven by another process')
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def suspend_on_signals(engine):
    """SIGINT and SIGTERM suspend the engine after the current step."""
    def handler(signum, frame):
        engine.suspend()
    saved = {s: signal.signal(s, handler)
             for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def failure_of(fd):
    """(step name, one-line error) of the step that failed, if any."""
    for ad in fd:
        if ad.failure is not None:
            return ad.name, error_line(ad.failure)
    return None, None


def error_line(failure):
    """Our errors read as they are; anything else names its type."""
    text = failure.exception_str.strip().splitlines()
    text = text[0] if text else ''
    if failure.check(exception.ImagepipeError):
        return text
    return f'{next(iter(failure))}: {text}'


def drive(store, book, fd, flow, lock_dir, listeners=()):
    """Run or resume ``flow`` on ``fd``; return the final flow state.

    ``listeners`` are callables taking the engine and returning a taskflow
    listener (a context manager). A failed run is reverted by the engine;
    the error is recorded in the run's meta.
    """
    engine = engines.load(flow, flow_detail=fd, book=book,
                          backend=store.backend, engine='serial')
    with run_lock(fd.uuid, lock_dir), contextlib.ExitStack() as stack:
        for make in listeners:
            stack.enter_context(make(engine))
        store.update(fd, finished=None, error=None, failed_step=None)
        raised = None
        with suspend_on_signals(engine):
            try:
                engine.run()
            except Exception as e:  # the engine reverted; report, not raise
                raised = failure.Failure.from_exception(e)
    fd = store.reload(fd)
    step, error = failure_of(fd)
    if error is None and raised is not None:
        error = error_line(raised)
    store.update(fd, finished=now() if fd.state in FINISHED else None,
                 error=error, failed_step=step)
    return fd.state, step, error
