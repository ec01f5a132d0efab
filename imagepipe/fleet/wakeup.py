"""How a conductor waits between two looks at its board: until a job is
posted or finished here, not a fixed period.

taskflow's conductor sleeps ``wait_timeout`` (0.5 s) whenever a look at the
board dispatched nothing, and taskflow's Redis board has no push: a boot
posted to an idle conductor waited 0.25 s on average before it was even
claimed, and a job beyond ``max_concurrent_jobs`` waited as long again
after a slot freed. Polling faster costs CPU on every idle host. Instead,
:func:`imagepipe.fleet.board.post` publishes on the host's channel
(:func:`imagepipe.fleet.board.channel`) and the conductor, when a job of
its own ends, too; :class:`Wakeup` waits on that channel (Redis pub/sub,
a connection of its own) and returns as soon as anything arrives.

The period stays as the fallback: a job posted by other means, or
published while the subscription was down (Redis restarting), is seen at
the next period at the latest. ``Wakeup`` takes the place of the
conductor's ``taskflow.types.timing.Timeout`` (the same four methods).
"""

import logging
import threading
import time

import redis

from imagepipe.fleet import board as boards

LOG = logging.getLogger('imagepipe.conductor')

#: seconds between two looks at the board when nothing arrives
PERIOD = 0.5

#: longest a wait listens before it checks whether it was interrupted
SLICE = 0.5


class Wakeup:
    def __init__(self, settings, host, period=PERIOD):
        self._channel = boards.channel(host)
        conf = boards.client_conf(settings.url)
        self._client = redis.Redis(**{k: v for k, v in conf.items()
                                      if k != 'board'})
        self._period = period
        self._stopped = threading.Event()
        self._pubsub = None
        self._using = threading.Lock()

    @property
    def value(self):
        return self._period

    def interrupt(self):
        self._stopped.set()

    def is_stopped(self):
        return self._stopped.is_set()

    def reset(self):
        self._stopped.clear()

    def poke(self):
        """Have the conductor look at its board now (a slot freed)."""
        try:
            self._client.publish(self._channel, b'done')
        except redis.RedisError as e:
            LOG.debug('no wake-up published: %s', e)

    def wait(self):
        """Until a message on the host's channel, a stop, or the period."""
        deadline = time.monotonic() + self._period
        while not self._stopped.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                with self._using:
                    if self._stopped.is_set():
                        return
                    if self._message(min(left, SLICE)):
                        return
            except redis.RedisError as e:
                LOG.debug('board channel %s: %s', self._channel, e)
                with self._using:
                    self._close()
                self._stopped.wait(max(0.0, deadline - time.monotonic()))
                return

    def _message(self, timeout):
        if self._pubsub is None:
            self._pubsub = self._client.pubsub(
                ignore_subscribe_messages=True)
            self._pubsub.subscribe(self._channel)
        if self._pubsub.get_message(timeout=timeout) is None:
            return False
        while self._pubsub.get_message(timeout=0) is not None:
            pass  # a burst of posts: one look at the board sees them all
        return True

    def _close(self):
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except redis.RedisError:
                pass
            self._pubsub = None

    def close(self):
        """Stop waiting (a wait in progress returns within SLICE) and
        let go of the channel; its subscription is not thread-safe, so it
        is used and closed under one lock."""
        self._stopped.set()
        with self._using:
            self._close()
        self._client.close()
