"""What a run shows while it runs: a live progress line or one line a step.

On a terminal, long steps (download, convert) redraw one line with percent,
bytes and rate; elsewhere (a log, CI) each finished step prints one line with
its duration. Durations are also stored with each step (taskflow's
DurationListener), which ``show`` and the summary read back.
"""

import functools
import sys
import time

from taskflow import states
from taskflow import task as tf_task
from taskflow.listeners import base
from taskflow.listeners import timing


def _size(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB':
            return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
        n /= 1024.0
    return str(n)


class ConsoleListener(base.Listener):
    """Prints step completions and progress to ``out``."""

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

    def _tasks(self):
        self._engine.compile()
        return [a for a in self._engine.compilation.execution_graph.nodes
                if isinstance(a, tf_task.Task)]

    def register(self):
        super().register()
        self._callbacks = {}
        if self.live:
            for atom in self._tasks():
                cb = functools.partial(self._progress, atom.name)
                atom.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, cb)
                self._callbacks[atom] = cb

    def deregister(self):
        for atom, cb in self._callbacks.items():
            atom.notifier.deregister(tf_task.EVENT_UPDATE_PROGRESS, cb)
        super().deregister()

    def _progress(self, name, event_type, details):
        line = f"  {details['progress'] * 100:5.1f}%"
        done, total = details.get('done'), details.get('total')
        if done is not None and total:
            elapsed = max(time.monotonic() - self.started.get(name, 0), 1e-6)
            line += f'  {_size(done)} of {_size(total)}'
            line += f'  {_size(done / elapsed)}/s'
        self.out.write('\r' + line.ljust(60))
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
            self.out.write('\r' + ' ' * 60 + '\r')
            self._drawn = False
        word = {states.SUCCESS: 'done', states.FAILURE: 'FAILED',
                states.REVERTED: 'reverted',
                states.REVERT_FAILURE: 'REVERT FAILED'}[state]
        took = ('' if started is None
                else f' in {time.monotonic() - started:.2f}s')
        self.out.write(f'{name}: {word}{took}\n')
        self.out.flush()


class _Durations(timing.DurationListener):
    """taskflow's DurationListener, quiet about a run that stopped early.

    It warns at deregistration about every timer still running: the flow's
    own after a suspension, a step's after a second signal. Both are how a
    run stops here, not errors.
    """

    def deregister(self):
        for timers in self._timers.values():
            timers.clear()
        super().deregister()


def durations(engine):
    """Store each step's duration in its atom detail (meta 'duration')."""
    return _Durations(engine)
