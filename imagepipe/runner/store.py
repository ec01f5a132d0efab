"""Runs as the run database holds them.

A run is one taskflow flow detail (its UUID is the run id) in a logbook of
its own. Its meta holds the factory and its JSON arguments (taskflow's
factory details, so the same flow can be rebuilt on resume), a fingerprint
of the graph, and what ``runs`` lists.
"""

import contextlib
import datetime
import hashlib
import json
import os

from oslo_utils import uuidutils
from taskflow import engines
from taskflow import flow as tf_flow
from taskflow import states
from taskflow.persistence import models

from imagepipe import exception
from imagepipe import flows

#: states after which a run needs no resume (REVERTED may be retried)
FINISHED = (states.SUCCESS, states.REVERTED)


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


def factory_kwargs(fd):
    return fd.meta['factory']['kwargs']


def state_of(fd):
    """The run's state; a run killed before its engine started is PENDING."""
    return fd.state or states.PENDING


#: states a run is in only while a process drives it
DRIVEN = (states.RUNNING, states.SUSPENDING, states.REVERTING)

#: how a run reads that was left in a DRIVEN state by a process that
#: stopped (killed, a second Ctrl-C): ``resume`` continues it
INTERRUPTED = 'INTERRUPTED'


def shown_state(fd, active):
    """The state ``runs`` and ``show`` give: never one no command leaves."""
    state = state_of(fd)
    if state in DRIVEN and not active:
        return INTERRUPTED
    return state


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
        # the factory details in the meta first: one transaction stores all
        engines.save_factory_details(fd, flows.FACTORY, [], kwargs)
        with self._conn() as conn:
            conn.save_logbook(book)
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
            raise exception.Refused(f'{why} matches {run_id!r}')
        return self.get(matches[0].uuid)

    def get(self, run_id, steps=True):
        """The flow detail of a full run id, as stored now (without its
        steps if not ``steps``)."""
        with self._conn() as conn:
            return conn.get_flow_details(run_id, lazy=not steps)

    def reload(self, fd):
        return self.get(fd.uuid)

    def update(self, fd, **values):
        """Merge ``values`` into the run's meta; its steps are not written.

        Only the run's own row changes (state and meta, from ``fd``), so
        ``fd`` must hold the current state: reload it first unless this
        process is the one driving it.
        """
        fd.meta.setdefault('imagepipe', {}).update(values)
        with self._conn() as conn:
            conn.update_flow_head(fd)

    def remove(self, fd):
        """Remove a run: its logbook, which holds it alone."""
        with self._conn() as conn:
            for book in conn.get_logbooks(lazy=True):
                if book.name.startswith('imagepipe-') and any(
                        f.uuid == fd.uuid for f in
                        conn.get_flows_for_book(book.uuid, lazy=True)):
                    conn.destroy_logbook(book.uuid)

    def save_steps(self, steps):
        """Write atom details (state, results) of a run not being driven."""
        with self._conn() as conn:
            for ad in steps:
                conn.update_atom_details(ad)
