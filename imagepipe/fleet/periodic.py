"""The conductor's periodic task: the image cache manager pass, as the
configured release's nova-compute made it every
image_cache_manager_interval (:func:`imagepipe.cache.policy.pass_interval`
gives the release's meaning of the value: ticks or seconds, and which
values turned it off).

Each pass is the very pass ``imagepipe cache clean`` makes
(:mod:`imagepipe.cache.clean`): a stored ``cache-clean`` run whose steps
take the bases' locks, so the conductor's own jobs, in other threads, and
boots in other processes are safe against it. The first pass comes one
interval after the conductor starts, as Nova's periodic tasks did. A pass
that fails is logged in one line and made again at the next interval; the
conductor keeps serving. On SIGTERM the pass in progress suspends: the
step running (one touch or one removal, which may wait for a base's lock)
finishes, no other starts, and the run is left SUSPENDED, for ``resume``
or for the next pass to redo; the conductor exits once it has.
"""

import functools
import logging
import threading

from taskflow import states
from taskflow.listeners import base as tf_listeners

from imagepipe.cache import clean
from imagepipe.cache import policy as cache_policy
from imagepipe.conf import settings as conf_settings
from imagepipe.tasks import locks

LOG = logging.getLogger('imagepipe.conductor')


def interval_of(rconf):
    """(seconds between passes or None for none, the option's value)."""
    value = conf_settings.snapshot(rconf)['image_cache_manager_interval']
    policy = cache_policy.for_release(rconf.options_release)
    return cache_policy.pass_interval(policy, value), value


class CachePasses:
    """Runs the passes in a thread of its own until :meth:`stop`."""

    def __init__(self, rconf, runs, lock_dir):
        self._rconf, self._runs, self._lock_dir = rconf, runs, lock_dir
        self.interval, self._value = interval_of(rconf)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve,
                                        name='image-cache-passes')

    def start(self):
        if self.interval is None:
            LOG.info('image cache manager: no periodic pass '
                     '(image_cache_manager_interval %s turned it off in '
                     'this release)', self._value)
            return
        LOG.info('image cache manager: a pass every %ds, the first in %ds '
                 '(image_cache_manager_interval %s)', self.interval,
                 self.interval, self._value)
        self._thread.start()

    def stop(self):
        """No further pass; the pass in progress suspends as its current
        step ends (:class:`_SuspendOnStop`)."""
        self._stopping.set()

    def join(self):
        if self._thread.is_alive():
            self._thread.join()

    def _serve(self):
        while not self._stopping.wait(self.interval):
            failed = None
            try:
                self._one_pass()
            except Exception as e:  # noqa: BLE001 - the conductor lives on
                failed = f'{type(e).__name__}: {e}'
            finally:
                locks.release_owned()
            if failed:  # logged out of the except: oslo.log would add it
                LOG.error('image cache pass failed: %s: the next in %ds',
                          failed, self.interval)

    def _one_pass(self):
        found = clean.survey(self._rconf, self._runs)
        decided = clean.decide(found)
        done = clean.make(self._rconf, self._runs, self._lock_dir, found,
                          decided, listeners=[functools.partial(
                              _SuspendOnStop, stopping=self._stopping)])
        counts = (f"{len(done['removed'])} removed, {len(done['kept'])} "
                  f"kept, {len(done['touched'])} in use refreshed, "
                  f'{len(found.warnings)} warnings')
        if done['error']:
            LOG.error('image cache pass: run %s: %s at step %s: %s (%s): '
                      'the next in %ds', done['run'], done['state'],
                      done['step'], done['error'], counts, self.interval)
        else:
            LOG.info('image cache pass: run %s: %s: %s', done['run'],
                     done['state'], counts)


class _SuspendOnStop(tf_listeners.Listener):
    """Suspends the pass as a step ends once the passes stop.

    In the engine's thread, as the step's result is stored (the storage
    lock is held and reentrant), so no further step starts. A
    ``suspend()`` from another thread would wait for that lock while the
    step runs (a removal may wait for a base's lock) and could lose the
    race for it to the next step.
    """

    def __init__(self, engine, stopping):
        super().__init__(engine, task_listen_for=(states.SUCCESS,),
                         flow_listen_for=())
        self._stopping = stopping

    def _task_receiver(self, state, details):
        if self._stopping.is_set():
            self._engine.suspend()
