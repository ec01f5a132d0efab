"""libvirtd and virtlogd for the boot tests, without systemd.

The daemons are started with ``-d`` (they daemonise and write their pid to
``/run/<name>.pid``) and stopped afterwards by that pid. A daemon that is
already running is used as it is and left running: only what this module
started is stopped. Guests are booted with ``virsh`` on ``qemu:///system``;
the domains are QEMU TCG (``type='qemu'``) because KVM may be missing or
unusable (/dev/kvm exists on the dev VMs but hangs the guest).

The machine is set up by tools/bootstrap.sh: the packages, and
``user = "root"`` in /etc/libvirt/qemu.conf (with QEMU as libvirt-qemu,
libvirt re-probes QEMU on every call where /dev/kvm is root-only).
"""

import fcntl
import os
import shutil
import signal
import subprocess
import time

URI = 'qemu:///system'
SBIN = ('/usr/sbin', '/sbin')
QEMU_CONF = '/etc/libvirt/qemu.conf'
#: held shared by every test session using the daemons; the session that
#: started them stops them only if it can take it exclusively
USERS_LOCK = '/run/imagepipe-boot-tests.lock'

#: the very first connection probes QEMU (about 12 s, then cached)
READY_TIMEOUT = 120
STOP_TIMEOUT = 15


class Unavailable(Exception):
    """The machine cannot boot guests under libvirt (with the reason)."""


def which(name):
    path = shutil.which(name) or shutil.which(
        name, path=os.pathsep.join(SBIN))
    if path is None:
        raise Unavailable(f'{name} is not installed: run tools/bootstrap.sh '
                          '(qemu-system-x86, libvirt-daemon-system, '
                          'libvirt-clients)')
    return path


def _alive(pid, name):
    """True when ``pid`` is a running (not zombie) process called ``name``."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    comm = stat[stat.index('(') + 1:stat.rindex(')')]
    state = stat[stat.rindex(')') + 2:].split()[0]
    return comm == name and state not in ('Z', 'X')


def _pid_of(name):
    """The pid in /run/<name>.pid if that process is ``name``, else None."""
    try:
        with open(f'/run/{name}.pid') as f:
            pid = int(f.read().strip() or 0)
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid and _alive(pid, name) else None


def check_qemu_conf(path=QEMU_CONF):
    try:
        with open(path) as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise Unavailable(f'{path} is missing: run tools/bootstrap.sh') \
            from None
    if 'user = "root"' not in lines or 'group = "root"' not in lines:
        raise Unavailable(
            f'{path} does not run QEMU as root: run tools/bootstrap.sh '
            '(otherwise libvirt re-probes QEMU on every call here)')


class Libvirt:
    """The daemons, and guests booted through ``virsh``."""

    def __init__(self):
        self.started = []      # (name, pid) of what this object started
        self.virsh_path = None
        self._users = None

    def start(self):
        if os.geteuid() != 0:
            raise Unavailable('the boot tests run libvirtd as root')
        for tool in ('qemu-system-x86_64', 'libvirtd', 'virtlogd', 'virsh'):
            which(tool)
        self.virsh_path = which('virsh')
        check_qemu_conf()
        self._users = open(USERS_LOCK, 'a')
        fcntl.flock(self._users, fcntl.LOCK_SH)
        for name in ('virtlogd', 'libvirtd'):
            self._start_daemon(name)
        self._wait_ready()
        return self

    def _start_daemon(self, name):
        if _pid_of(name) is not None:
            return
        subprocess.run([which(name), '-d'], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)
        deadline = time.monotonic() + 10
        while (pid := _pid_of(name)) is None:
            if time.monotonic() > deadline:
                raise Unavailable(f'{name} -d wrote no live pid to '
                                  f'/run/{name}.pid')
            time.sleep(0.05)
        self.started.append((name, pid))

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            done = self.virsh('capabilities', check=False, timeout=60)
            if done.returncode == 0 and 'qemu' in done.stdout:
                return
            if time.monotonic() > deadline:
                raise Unavailable('libvirtd does not answer: '
                                  f'{done.stderr.strip()}')
            time.sleep(0.2)

    def stop(self):
        """Stop, by pid, the daemons this object started (libvirtd first).

        Returns what went wrong, as text. Daemons another test session is
        still using (it holds the users lock) are left running.
        """
        errors = []
        if self._users is None:
            return errors
        try:
            fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            errors.append('another test session uses the daemons: left '
                          f'running {self.started}')
            self.started = []
        for name, pid in reversed(self.started):
            if not _alive(pid, name):
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while _alive(pid, name) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _alive(pid, name):
                os.kill(pid, signal.SIGKILL)
                errors.append(f'{name} ({pid}) ignored SIGTERM')
        self.started = []
        self._users.close()
        self._users = None
        return errors

    def virsh(self, *args, check=True, timeout=60):
        return subprocess.run([self.virsh_path, '-c', URI, '-q', *args],
                              check=check, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)

    def state(self, name):
        done = self.virsh('domstate', name, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def remove(self, name):
        """Destroy (unless off) and undefine ``name`` if it exists."""
        state = self.state(name)
        if state is None:
            return
        if state != 'shut off':
            self.virsh('destroy', name, check=False)
        self.virsh('undefine', name, check=False)

    def boot(self, domain_xml, name, console, timeout):
        """Define and start a domain, wait until it is off: (log, seconds).

        Whatever happens the domain is destroyed and undefined. The result
        says nothing about the guest: judge it by its console (a kernel
        panic ends the domain just like a clean power-off).
        """
        self.remove(name)
        if os.path.exists(console):
            os.unlink(console)
        xml_path = console + '.xml'
        with open(xml_path, 'w') as f:
            f.write(domain_xml)
        start = time.monotonic()
        timed_out = False
        try:
            self.virsh('define', xml_path)
            self.virsh('start', name)
            while self.state(name) not in ('shut off', None):
                if time.monotonic() - start > timeout:
                    timed_out = True
                    break
                time.sleep(0.1)
        finally:
            elapsed = time.monotonic() - start
            self.remove(name)
        try:
            with open(console, errors='replace') as f:
                log = f.read()
        except FileNotFoundError:
            log = ''
        if timed_out:
            log += f'\n[boot test: domain still running after {timeout} s, ' \
                   'destroyed]\n'
        return log, elapsed
