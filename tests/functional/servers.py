"""A real redis-server and a real PostgreSQL for the fleet tests.

Each is started once per test session on a free loopback port in a
temporary directory and stopped at the end; no systemd, no system cluster.
tools/bootstrap.sh --tests installs both (Debian's ``redis-server`` and
``postgresql``): once it ran, nothing here skips.

PostgreSQL refuses to run as root, so its directory belongs to the
``postgres`` user and ``initdb``/``pg_ctl`` run as that user (``runuser``);
clients connect over TCP with trust authentication as role ``imagepipe``.
"""

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

PG_BIN = sorted(glob.glob('/usr/lib/postgresql/*/bin'))


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_closed(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)
    raise AssertionError(f'127.0.0.1:{port} still listens')


def _wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        time.sleep(0.05)
    raise AssertionError(f'nothing listens on 127.0.0.1:{port}')


class Redis:
    """``redis-server --appendonly yes`` in ``directory``."""

    def __init__(self, directory):
        self.dir = directory
        self.port = free_port()
        self.url = f'redis://127.0.0.1:{self.port}'

    def start(self):
        subprocess.run(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
             '--appendonly', 'yes', '--dir', self.dir, '--daemonize', 'yes',
             '--pidfile', os.path.join(self.dir, 'redis.pid'),
             '--logfile', os.path.join(self.dir, 'redis.log'),
             '--save', ''], check=True)
        _wait_port(self.port)

    def stop(self):
        subprocess.run(['redis-cli', '-p', str(self.port), 'shutdown'],
                       capture_output=True, check=False)
        _wait_closed(self.port)

    @contextlib.contextmanager
    def down(self):
        """Stopped (its jobs saved in its append-only file) for the block,
        started again on the same port after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def flush(self):
        subprocess.run(['redis-cli', '-p', str(self.port), 'flushall'],
                       capture_output=True, check=True)


class Postgres:
    """A PostgreSQL cluster in ``directory`` (owned by postgres)."""

    USER = 'imagepipe'

    def __init__(self, directory):
        self.dir = directory
        self.data = os.path.join(directory, 'data')
        self.port = free_port()
        self.bin = PG_BIN[-1]

    def url(self, database='imagepipe'):
        return (f'postgresql+psycopg2://{self.USER}@127.0.0.1:{self.port}/'
                f'{database}')

    def _as_postgres(self, *argv):
        subprocess.run(['runuser', '-u', 'postgres', '--', *argv],
                       check=True, capture_output=True, cwd=self.dir)

    def init(self):
        shutil.chown(self.dir, 'postgres', 'postgres')
        self._as_postgres(os.path.join(self.bin, 'initdb'), '-D', self.data,
                          '-A', 'trust', '-U', self.USER)

    def start(self):
        self._as_postgres(
            os.path.join(self.bin, 'pg_ctl'), '-D', self.data, '-o',
            f'-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1',
            '-l', os.path.join(self.dir, 'log'), '-w', 'start')

    def stop(self):
        self._as_postgres(os.path.join(self.bin, 'pg_ctl'), '-D', self.data,
                          '-m', 'fast', '-w', 'stop')

    @contextlib.contextmanager
    def down(self):
        """Stopped (a fast shutdown: its clients are cut off) for the
        block, started again on the same port after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def socket_url(self, database):
        """``database`` reached through the Unix socket in the cluster's
        directory, not over TCP."""
        return (f'postgresql+psycopg2://{self.USER}@/{database}'
                f'?host={self.dir}&port={self.port}')

    @contextlib.contextmanager
    def restarted_socket_only(self):
        """Restarted (its clients cut off) refusing clients over TCP for
        the block, as a server still coming up looks to them, while the
        Unix socket (:meth:`socket_url`) serves; TCP accepted again after
        it (pg_hba.conf reloaded)."""
        hba = os.path.join(self.data, 'pg_hba.conf')
        with open(hba) as f:
            rules = f.read()
        self.stop()
        with open(hba, 'w') as f:
            f.write('local all all trust\n')
        self.start()
        try:
            yield
        finally:
            with open(hba, 'w') as f:
                f.write(rules)
            self._as_postgres(os.path.join(self.bin, 'pg_ctl'), '-D',
                              self.data, 'reload')

    def createdb(self, name):
        subprocess.run([os.path.join(self.bin, 'createdb'), '-h', '127.0.0.1',
                        '-p', str(self.port), '-U', self.USER, name],
                       check=True, capture_output=True)
        return self.url(name)


@pytest.fixture(scope='session')
def redis_server():
    directory = tempfile.mkdtemp(prefix='imagepipe-redis-')
    server = Redis(directory)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope='session')
def postgres():
    directory = tempfile.mkdtemp(prefix='imagepipe-pg-')
    server = Postgres(directory)
    server.init()
    server.start()
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(directory, ignore_errors=True)


_databases = iter(range(1, 10 ** 6))


@pytest.fixture
def pg_url(postgres):
    """A new, empty database for one test."""
    return postgres.createdb(f'runs{next(_databases)}')
