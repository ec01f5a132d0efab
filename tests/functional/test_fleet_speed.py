"""The mechanisms that keep a boot through a conductor fast, on a real
redis-server (no timing: what each does): a posted job wakes the host's
conductors."""

import threading
import uuid

import pytest

from imagepipe.fleet import board as boards
from imagepipe.fleet import wakeup
from tests.functional.servers import redis_server  # noqa: F401

pytestmark = pytest.mark.slow

#: a period no test waits out: a wait that ends came from a wake-up
LONG = 600


def _waiting(waker):
    """``waker.wait()`` in a thread, started and subscribed."""
    done = threading.Event()
    thread = threading.Thread(target=lambda: (waker.wait(), done.set()),
                              daemon=True)
    thread.start()
    return done


@pytest.mark.parametrize('how', ['posted', 'poked'])
def test_a_post_or_a_finished_job_wakes_the_hosts_conductor(
        redis_server, how):  # noqa: F811
    host = f'h-{uuid.uuid4().hex[:8]}'
    settings = boards.Settings(redis_server.url, 30, 2, host)
    waker = wakeup.Wakeup(settings, host, period=LONG)
    other = wakeup.Wakeup(settings, 'other-' + host, period=LONG)
    try:
        assert not waker._message(0.2)  # subscribed now, nothing yet
        woken, not_woken = _waiting(waker), _waiting(other)
        if how == 'posted':
            with boards.opened(settings, host, 'test') as board:
                boards.post(board, str(uuid.uuid4()))
        else:
            waker.poke()
        assert woken.wait(60)
        assert not not_woken.is_set()  # another host's channel stays quiet
    finally:
        other.interrupt()
        waker.close()
        other.close()

