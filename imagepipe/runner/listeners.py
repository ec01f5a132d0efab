"""What a run shows while it runs: progress, step lines, and the debug log.

On a terminal, long steps (download, convert) redraw one line with percent,
bytes, rate and time left; elsewhere (a log, CI, ``--format json``) the same
facts go to the log (stderr) as one line every :data:`LOG_EVERY` seconds or
every tenth done, once a step has run that long, so that stdout stays the
command's output. Each finished step prints one line with its duration.
Durations are also stored with each step (by the run's engine,
:mod:`imagepipe.runner.engine`), which ``show`` and the summary read
back. With ``--debug`` every state
change of the run and of its steps is logged (taskflow's
DynamicLoggingListener, as Cinder's flow_utils uses it).
"""

import functools
import logging
import sys
import time

from taskflow import states
from taskflow import task as tf_task
from taskflow.listeners import base
from taskflow.listeners import logging as tf_logging

from imagepipe import units

LOG = logging.getLogger('imagepipe.progress')

#: seconds a step runs before its progress is logged, and between lines
LOG_EVERY = 5.0


def _left(fraction, elapsed):
    """Seconds left at this pace, None before anything is done."""
    if fraction <= 0 or fraction >= 1:
        return None
    return elapsed * (1 - fraction) / fraction


def progress_text(details, elapsed):
    """``42.0%  4.2 MiB of 10.0 MiB  1.1 MiB/s  5 s left`` (bytes and rate
    when the step reports them)."""
    fraction = details['progress']
    text = f'{fraction * 100:5.1f}%'
    done, total = details.get('done'), details.get('total')
    if done is not None and total:
        text += (f'  {units.size(done)} of {units.size(total)}'
                 f'  {units.size(done / max(elapsed, 1e-6))}/s')
    left = _left(fraction, elapsed)
    if left is not None:
        text += f'  {left:.0f} s left'
    return text


class _Progress(base.Listener):
    """Calls :meth:`_progress` with each step's progress reports."""

    def _tasks(self):
        self._engine.compile()
        return [a for a in self._engine.compilation.execution_graph.nodes
                if isinstance(a, tf_task.Task)]

    def _listen_to_progress(self):
        self._callbacks = {}
        for atom in self._tasks():
            cb = functools.partial(self._progress, atom.name)
            atom.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, cb)
            self._callbacks[atom] = cb

    def deregister(self):
        for atom, cb in getattr(self, '_callbacks', {}).items():
            atom.notifier.deregister(tf_task.EVENT_UPDATE_PROGRESS, cb)
        super().deregister()

    def _progress(self, name, event_type, details):
        raise NotImplementedError


class ProgressLog(_Progress):
    """Progress as log lines: for output that is not a terminal."""

    def __init__(self, engine, every=LOG_EVERY):
        super().__init__(engine, task_listen_for=(states.RUNNING,),
                         flow_listen_for=())
        self.every = every
        self.started = {}
        self.logged = {}

    def register(self):
        super().register()
        self._listen_to_progress()

    def _task_receiver(self, state, details):
        name = details['task_name']
        self.started[name] = self.logged[name] = (time.monotonic(), 0.0)

    def _progress(self, name, event_type, details):
        now = time.monotonic()
        start = self.started.get(name, (now, 0.0))[0]
        last, tenth = self.logged.get(name, (start, 0.0))
        fraction = details['progress']
        if now - start < self.every or fraction >= 1.0:
            return
        if now - last < self.every and int(fraction * 10) <= tenth:
            return
        self.logged[name] = (now, int(fraction * 10))
        LOG.info('%s: %s', name, progress_text(details, now - start))


class ConsoleListener(_Progress):
    """Prints step completions to ``out``, and progress as a live line when
    ``out`` is a terminal (:class:`ProgressLog` logs it otherwise)."""

    def __init__(self, engine, out=None):
        super().__init__(engine, task_listen_for=(states.RUNNING,
                                                  states.SUCCESS,
                                                  states.FAILURE,
                                                  states.REVERTING,
                                                  states.REVERTED,
                                                  states.REVERT_FAILURE))
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self.started = {}
        self._drawn = False

    def register(self):
        super().register()
        if self.live:
            self._listen_to_progress()

    def _progress(self, name, event_type, details):
        elapsed = time.monotonic() - self.started.get(name, time.monotonic())
        line = '  ' + progress_text(details, elapsed)
        self.out.write('\r' + line.ljust(70))
        self.out.flush()
        self._drawn = True

    def _task_receiver(self, state, details):
        name = details['task_name']
        if state in (states.RUNNING, states.REVERTING):
            self.started[name] = time.monotonic()
            if self.live and state == states.RUNNING:
                self.out.write(f'{name} ...\n')
                self.out.flush()
            return
        started = self.started.pop(name, None)
        if self._drawn:
            self.out.write('\r' + ' ' * 70 + '\r')
            self._drawn = False
        word = {states.SUCCESS: 'done', states.FAILURE: 'FAILED',
                states.REVERTED: 'reverted',
                states.REVERT_FAILURE: 'REVERT FAILED'}[state]
        took = ('' if started is None
                else f' in {time.monotonic() - started:.2f}s')
        self.out.write(f'{name}: {word}{took}\n')
        self.out.flush()


def progress(fmt, out=None):
    """The listeners that show progress for output format ``fmt``: the
    console's step lines (and live line on a terminal), or log lines."""
    out = out or sys.stdout
    made = []
    if fmt == 'table':
        made.append(functools.partial(ConsoleListener, out=out))
    if fmt != 'table' or not out.isatty():
        made.append(ProgressLog)
    return made


def debug_log(engine):
    """Every state change of the run and its steps, at debug level (with
    a failure's traceback)."""
    return tf_logging.DynamicLoggingListener(
        engine, log=logging.getLogger('imagepipe.steps'))
