"""How imagepipe runs a command: limits, exit statuses, one-line errors."""

import pytest

from imagepipe import exception
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
