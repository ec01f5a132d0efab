"""Image locks between threads of one process (a conductor's jobs): the
second thread waits as a second process would."""

import os
import threading

from imagepipe.tasks import locks


def test_a_second_thread_waits_for_the_lock(tmp_path):
    path = str(tmp_path)
    os.chmod(path, 0o755)
    order = []
    asked, got = threading.Event(), threading.Event()

    def second():
        asked.set()
        locks.hold('img', path)
        order.append('second holds')
        got.set()
        locks.release('img')

    locks.hold('img', path)
    t = threading.Thread(target=second)
    t.start()
    asked.wait()
    assert not got.wait(0.5), 'the second thread walked past the lock'
    order.append('first releases')
    locks.release('img')
    t.join()
    assert order == ['first releases', 'second holds']
    assert not locks.is_held('img')


def test_release_owned_frees_only_the_threads_locks(tmp_path):
    path = str(tmp_path)
    locks.hold('mine', path)
    done = threading.Event()

    def other():
        locks.hold('theirs', path)
        assert locks.release_owned() == ['theirs']
        done.set()

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert done.is_set()
    assert locks.is_held('mine') and not locks.is_held('theirs')
    assert locks.release_owned() == ['mine']
    assert not locks.is_held('mine')
