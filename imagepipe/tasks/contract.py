"""The contract every imagepipe task keeps, and the plan it describes.

A task is a pure function of plain JSON inputs. The flow factory passes the
values it knows when it builds the flow (paths, sizes, release switches) as
taskflow ``inject``; values only known while running (what the download turned
out to be) come from earlier tasks' results, wired with ``rebind``. Every task
provides its result under its own name, so a result is found by task name.

``execute`` is idempotent (it may run again after a crash inside it) and
``revert`` removes only what the task made, deriving every path from its
arguments or its result, never from ``self``; it may receive a ``Failure`` as
``result`` and may run twice.

A task that works under one of Nova's locks receives it as the injected
``lock`` argument. Subclasses implement ``work`` (and ``undo`` when there is
something to remove), never ``execute`` or ``revert``: those are the hooks
taskflow calls, which take the lock around ``work`` and release it after
``undo`` (:mod:`imagepipe.tasks.locks`), so every task of a locked section
takes the lock again when a resumed run starts in its middle.

``describe()`` renders the same arguments into what the plan shows, without
touching the disk: values that only a run can know appear as placeholders.

Every file a task makes, opens for writing or removes under instances_path
goes through :mod:`imagepipe.tasks.safefs`.
"""

import inspect
import os
import time

from taskflow import task

from imagepipe.tasks import locks

#: Seconds between two progress reports of a step (what the run database
#: keeps of them: :mod:`imagepipe.runner.engine`).
PROGRESS_INTERVAL = 0.5


class Pending(dict):
    """Stands in for an earlier task's result when a plan is drawn.

    Any key reads as ``<key of producer>``, so the code that builds a command
    line from a result builds the plan's command line too.
    """

    def __init__(self, producer):
        super().__init__()
        self.producer = producer

    def __missing__(self, key):
        return f'<{key} of {self.producer}>'

    def get(self, key, default=None):
        return self[key]


def _execute(task, lock, args):
    with locks.held(lock):
        return task.work(**args)


def _revert(task, lock, args):
    try:
        return task.undo(**args)
    finally:
        locks.abandon(lock)


def _hook(method, around):
    """A method that calls ``around(task, lock, args)``, whose signature is
    ``method``'s with an optional ``lock`` added: taskflow reads the
    arguments a task needs from the signature of execute and revert."""
    sig = inspect.signature(method)
    params = list(sig.parameters.values())
    kwargs = [p for p in params if p.kind is p.VAR_KEYWORD]
    named = [p for p in params if p.kind is not p.VAR_KEYWORD]
    lock = inspect.Parameter('lock', inspect.Parameter.KEYWORD_ONLY,
                             default=None)

    def hooked(self, lock=None, **args):
        return around(self, lock, args)

    hooked.__signature__ = sig.replace(parameters=named + [lock] + kwargs)
    hooked.__doc__ = method.__doc__
    return hooked


class ImageTask(task.Task):
    """Base class: explicit name, JSON inputs, a description for the plan.

    Subclasses set ``source`` (the Nova function the step stands for),
    implement ``work(**args)`` (the step; its result is the step's result),
    ``undo(**args)`` when a revert has something to remove (it also gets
    ``result`` and ``flow_failures``), and ``preview(**args)`` (``done``:
    the step's own result, once it ran) returning a dict with any of
    ``command`` (argv list or None; a list of argv lists when the step runs
    several), ``creates``, ``removes`` and ``notes`` lists.
    """

    source = None
    notes = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if {'execute', 'revert'} & set(vars(cls)):
            raise TypeError(f'{cls.__name__}: implement work and undo; '
                            'execute and revert hold the lock around them')
        cls.execute = _hook(cls.work, _execute)
        cls.revert = _hook(cls.undo, _revert)

    def __init__(self, name, inject=None, wire=None, notes=()):
        super().__init__(name=name, provides=name, inject=inject or {},
                         rebind=dict(wire or {}))
        self.wire = dict(wire or {})
        self.extra_notes = tuple(notes)

    def work(self, **args):
        raise NotImplementedError

    def undo(self, **_):
        """Nothing to remove: what the step made belongs to another."""

    execute = _hook(work, _execute)
    revert = _hook(undo, _revert)

    def preview(self, **args):
        return {}

    _reported = None

    def report(self, fraction, **details):
        """Progress with details (e.g. ``done``/``total`` bytes).

        taskflow stores the extra keys with the progress and hands them to
        listeners, which show bytes and rate from them. The first report and
        the last (1.0) always go through, the others at most one every
        PROGRESS_INTERVAL.
        """
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        if (fraction < 1.0 and self._reported is not None
                and now - self._reported < PROGRESS_INTERVAL):
            return
        self._reported = now
        self.notifier.notify(task.EVENT_UPDATE_PROGRESS,
                             {'progress': fraction, **details})

    def update_progress(self, progress):
        """Ignored: steps report with :meth:`report`.

        The engine calls this with the 0.0 and 1.0 it has just stored as the
        step starts and ends; passing them on would store each once more.
        """

    def describe(self, results=None):
        """What this step will do, as the plan shows it.

        ``results`` (step name -> result) fills in what earlier steps of a
        run produced, so a finished run shows the commands it really ran.
        """
        results = results or {}
        args = dict(self.inject)
        for arg, producer in self.wire.items():
            done = results.get(producer)
            args[arg] = done if isinstance(done, dict) else Pending(producer)
        if isinstance(results.get(self.name), dict):
            args['done'] = results[self.name]
        shown = self.preview(**args)
        return {
            'name': self.name,
            'command': shown.get('command'),
            'source': self.source,
            'notes': list(self.notes) + list(shown.get('notes', ()))
            + list(self.extra_notes),
            'creates': list(shown.get('creates', ())),
            'removes': list(shown.get('removes', ())),
            'lock': (self.inject.get('lock') or {}).get('name'),
        }


def flush_and_drop(fd):
    """Make a written file durable, then drop its pages from the page cache.

    Files imagepipe writes are read by guests through QEMU with
    ``cache=none``, or once more at most by a copy, so keeping them cached
    only pushes out what the host needs.
    """
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def drop_cache(path):
    """Drop the clean pages of ``path`` from the page cache."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
