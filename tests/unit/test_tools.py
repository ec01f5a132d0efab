"""How imagepipe runs a command: limits, exit statuses, one-line errors."""

import os
import threading
import time

import pytest

from imagepipe import exception
from imagepipe import stop
from imagepipe import tools


def test_prlimit_limits_the_command_itself():
    _, out, _ = tools.run('sh', '-c', 'ulimit -v; ulimit -t',
                          prlimit=tools.QEMU_IMG_LIMITS)
    assert out.split() == ['1048576', '30']  # KiB of address space, CPU s


def test_accepted_exit_status_is_returned():
    assert tools.run('sh', '-c', 'exit 3', ok=(0, 3))[0] == 3
    assert tools.run('sh', '-c', 'exit 4', ok=None)[0] == 4


def test_failure_names_the_command_status_and_last_line():
    with pytest.raises(exception.ToolFailed) as e:
        tools.run('sh', '-c', 'echo one >&2; echo two >&2; exit 5',
                  prlimit=tools.QEMU_IMG_LIMITS)
    assert str(e.value) == ('sh -c echo one >&2; echo two >&2; exit 5 '
                            'failed with exit status 5: two')


def test_missing_tool_names_its_package(monkeypatch):
    monkeypatch.setenv('PATH', '/nonexistent')
    with pytest.raises(exception.ToolMissing) as e:
        tools.run('qemu-img', 'info', 'x')
    assert 'install the Debian package qemu-utils' in str(e.value)


#: a command that closes its output, then exits a moment later
QUIET_EXIT = ('sh', '-c', 'echo out; echo err >&2; exec >&- 2>&-; '
              'sleep 0.2; exit 3')


def test_the_exit_is_awaited_without_sleeping(monkeypatch):
    slept = []
    monkeypatch.setattr(time, 'sleep', slept.append)
    code, out, err = tools.run(*QUIET_EXIT, ok=(3,))
    assert (code, out, err) == (3, 'out\n', 'err\n')
    assert slept == []  # Popen.wait(timeout) sleeps between looks


def test_without_pidfds_the_exit_is_still_awaited(monkeypatch):
    def no_pidfd(pid):
        raise OSError(38, 'Function not implemented')

    monkeypatch.setattr(os, 'pidfd_open', no_pidfd)
    assert tools.run(*QUIET_EXIT, ok=(3,)) == (3, 'out\n', 'err\n')


def test_a_stop_request_ends_a_command_that_closed_its_output():
    done = []
    runner = threading.Thread(target=lambda: done.append(_stopped(
        'sh', '-c', 'exec >&- 2>&-; sleep 60')))
    runner.start()
    try:
        time.sleep(0.3)  # let it close its output (no timing asserted)
        stop.request()
        runner.join(30)
    finally:
        stop.clear()
    assert done == ['sh stopped: the run is suspending']


def _stopped(*cmd):
    try:
        tools.run(*cmd)
    except stop.Stopped as e:
        return str(e)
    return 'not stopped'
