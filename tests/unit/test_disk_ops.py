"""[compute] max_concurrent_disk_ops: a semaphore of the host, held by the
threads of one process and by other processes alike, and the steps and
plans that take it."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from imagepipe import exception
from imagepipe import flows
from imagepipe import stop
from imagepipe.conf import loader
from imagepipe.conf import settings
from imagepipe.runner import store
from imagepipe.tasks import disk_ops
from imagepipe.tasks import safefs

#: a holder: appends "enter NAME" and "leave NAME" to the events file
#: (O_APPEND: one write a line, whatever the process), and between them
#: waits until ``until`` enter lines are there (0: does not wait)
HOLDER = textwrap.dedent('''
    import os, sys, time
    from imagepipe.tasks import disk_ops

    def hold(limit, events, name, until, pause):
        def log(word):
            fd = os.open(events, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f'{word} {name}\\n'.encode())
            os.close(fd)
        with disk_ops.slot(limit):
            log('enter')
            for _ in range(1000):
                with open(events) as f:
                    if f.read().count('enter') >= until:
                        break
                time.sleep(0.01)
            time.sleep(pause)
            log('leave')
''')
_space = {}
exec(HOLDER, _space)
hold = _space['hold']


def _process(limit, events, name, until=0, pause=0.0):
    code = HOLDER + (f'\nhold({limit!r}, {events!r}, {name!r}, {until}, '
                     f'{pause})\n')
    return subprocess.Popen([sys.executable, '-c', code])


def _thread(limit, events, name, until=0, pause=0.0):
    t = threading.Thread(target=hold, args=(limit, events, name, until,
                                            pause))
    t.start()
    return t


def _inside_at_most(events):
    """The most holders inside at once, from the events file."""
    inside = most = 0
    with open(events) as f:
        for line in f:
            inside += 1 if line.startswith('enter') else -1
            most = max(most, inside)
    assert inside == 0
    return most


def _run_all(limit, events, until=0, pause=0.0):
    holders = [_process(limit, events, f'p{i}', until, pause)
               for i in range(2)]
    holders += [_thread(limit, events, f't{i}', until, pause)
                for i in range(2)]
    for h in holders:
        if isinstance(h, threading.Thread):
            h.join()
        else:
            assert h.wait(60) == 0
    return _inside_at_most(events)


def test_one_slot_keeps_threads_and_processes_apart(tmp_path):
    locks = str(tmp_path / 'locks')
    events = str(tmp_path / 'events')
    assert _run_all(disk_ops.limit(1, locks), events, pause=0.2) == 1
    with open(events) as f:
        assert len(f.readlines()) == 8
    assert sorted(os.listdir(locks)) == ['imagepipe-disk-ops.0']


def test_two_slots_let_two_in_and_no_more(tmp_path):
    """Each holder stays until two are inside: with one slot they would
    wait for each other forever (and the holders give up, so the count
    says 1)."""
    events = str(tmp_path / 'events')
    limit = disk_ops.limit(2, str(tmp_path / 'locks'))
    assert _run_all(limit, events, until=2, pause=0.1) == 2


def test_unlimited_opens_nothing(tmp_path):
    locks = tmp_path / 'locks'
    assert disk_ops.limit(0, str(locks)) is None
    with disk_ops.slot(disk_ops.limit(0, str(locks))):
        pass
    assert not locks.exists()
    assert disk_ops.note(None, 'the download') == []


def test_a_planted_link_is_refused(tmp_path):
    locks = tmp_path / 'locks'
    locks.mkdir()
    (locks / 'imagepipe-disk-ops.0').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(safefs.UnsafePath, match='symbolic link'):
        with disk_ops.slot(disk_ops.limit(1, str(locks))):
            pass
    assert not (tmp_path / 'elsewhere').exists()


def test_a_waiter_stops_when_the_run_suspends(tmp_path):
    limit = disk_ops.limit(1, str(tmp_path / 'locks'))
    failed = []

    def waiter():
        try:
            with disk_ops.slot(limit):
                failed.append('entered')
        except stop.Stopped as e:
            failed.append(str(e))

    with disk_ops.slot(limit):
        t = threading.Thread(target=waiter)
        t.start()
        stop.request()
        try:
            t.join(30)
        finally:
            stop.clear()
    assert failed == ['the wait for a disk operation slot stopped: the run '
                      'is suspending']


# -- the option, the flow and the plan ---------------------------------------

def _steps(tmp_path, release, text, images_type='qcow2'):
    conf = tmp_path / f'{release}-{images_type}.conf'
    conf.write_text(f'[DEFAULT]\nstate_path = {tmp_path}\n{text}\n'
                    f'[libvirt]\nimages_type = {images_type}\n'
                    'images_volume_group = vg0\n')
    snapshot = settings.snapshot(loader.load([str(conf)], release=release))
    flow = flows.factory(release, snapshot, {
        'image': '/images/cirros.qcow2', 'instance': 'vm1', 'root_gb': 1,
        'ephemeral_gb': 0, 'swap_mb': 0})
    return {a.name: (a.inject, a.describe()) for a in store.atoms(flow)}


@pytest.mark.parametrize('images_type,steps', [
    ('qcow2', ['root-convert', 'root-fetch']),
    ('lvm', ['root-convert', 'root-fetch', 'root-write-volume'])])
def test_the_steps_nova_limits_take_a_slot(tmp_path, images_type, steps):
    got = _steps(tmp_path, 'gazpacho',
                 '[compute]\nmax_concurrent_disk_ops = 3', images_type)
    taking = sorted(n for n, (inject, _) in got.items()
                    if 'disk_ops' in inject)
    assert taking == steps
    for name in steps:
        inject, shown = got[name]
        assert inject['disk_ops'] == {'slots': 3,
                                      'path': str(tmp_path / 'instances'
                                                  / 'locks')}
        assert any('waits while 3 downloads or conversions run' in n
                   for n in shown['notes'])


@pytest.mark.parametrize('release,text', [
    ('gazpacho', ''), ('gazpacho', '[compute]\nmax_concurrent_disk_ops = 0'),
    ('juno', '[compute]\nmax_concurrent_disk_ops = 3')])
def test_no_limit_leaves_the_steps_as_they_were(tmp_path, release, text):
    """The default, and a release whose Nova had no such option."""
    got = _steps(tmp_path, release, text, 'lvm')
    for inject, shown in got.values():
        assert 'disk_ops' not in inject
        assert not any('disk operation' in n or 'max_concurrent_disk_ops'
                       in n for n in shown['notes'])


def test_a_negative_limit_is_one_clear_error(tmp_path):
    conf = tmp_path / 'nova.conf'
    conf.write_text('[compute]\nmax_concurrent_disk_ops = -1\n')
    with pytest.raises(exception.ConfigError) as e:
        settings.snapshot(loader.load([str(conf)], release='gazpacho'))
    assert str(e.value) == (
        f"invalid value '-1' for [compute] max_concurrent_disk_ops in {conf} "
        '(release gazpacho): accepted values are an integer of at least 0')
