"""Run the real ``imagepipe`` command with a crash planted in it (tests only).

    python runner_harness.py [--kill-after STEP] [--kill-during STEP:FRACTION]
                             [--group] -- IMAGEPIPE ARGS...

The harness calls ``imagepipe.cmd.main.main`` in this process after wrapping
``imagepipe.runner.driver.start``, ``drive`` and ``resume`` (what ``run``
and ``resume`` call) so that every engine they drive gets one more taskflow
listener. That listener sends SIGKILL to this process:

- ``--kill-after STEP``: when STEP reaches SUCCESS (taskflow has stored the
  result before it notifies, so the crash falls between two steps);
- ``--kill-during STEP:FRACTION``: when STEP reports progress of at least
  FRACTION (below 1.0), i.e. in the middle of a download or a convert.

``--group`` kills the whole process group instead (``os.killpg(0, ...)``),
so a ``qemu-img`` child dies with it; start the harness in a session of its
own. Nothing of this lives in the product: the listener is installed from
here only.
"""

import argparse
import os
import signal
import sys

from taskflow import states
from taskflow import task as tf_task
from taskflow.listeners import base


def _die(group):
    sys.stdout.flush()
    sys.stderr.flush()
    if group:
        os.killpg(0, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


class Killer(base.Listener):
    """SIGKILL when a step succeeds, or passes a fraction of its progress."""

    def __init__(self, engine, after=None, during=None, group=False):
        super().__init__(engine, task_listen_for=(states.SUCCESS,),
                         flow_listen_for=())
        self.after, self.during, self.group = after, during, group
        self._progress = []

    def register(self):
        super().register()
        if self.during:
            name, fraction = self.during
            self._engine.compile()
            for atom in self._engine.compilation.execution_graph.nodes:
                if atom.name == name:
                    def cb(event_type, details, fraction=fraction):
                        if fraction <= details['progress'] < 1.0:
                            _die(self.group)
                    atom.notifier.register(tf_task.EVENT_UPDATE_PROGRESS, cb)
                    self._progress.append((atom, cb))

    def deregister(self):
        for atom, cb in self._progress:
            atom.notifier.deregister(tf_task.EVENT_UPDATE_PROGRESS, cb)
        super().deregister()

    def _task_receiver(self, state, details):
        if details['task_name'] == self.after:
            _die(self.group)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--kill-after', metavar='STEP')
    parser.add_argument('--kill-during', metavar='STEP:FRACTION')
    parser.add_argument('--group', action='store_true')
    parser.add_argument('argv', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ['--'] else args.argv
    during = None
    if args.kill_during:
        name, fraction = args.kill_during.rsplit(':', 1)
        during = (name, float(fraction))

    from imagepipe.cmd import main as imagepipe_main
    from imagepipe.runner import driver

    def killer(engine):
        return Killer(engine, args.kill_after, during, args.group)

    def with_killer(real):
        def wrapped(*a, listeners=(), **kw):
            return real(*a, listeners=tuple(listeners) + (killer,), **kw)
        return wrapped

    driver.start = with_killer(driver.start)
    driver.drive = with_killer(driver.drive)
    driver.resume = with_killer(driver.resume)
    return imagepipe_main.main(argv)


if __name__ == '__main__':
    sys.exit(main())
