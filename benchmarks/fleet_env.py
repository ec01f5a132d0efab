"""What case 9 runs on: a redis-server, a PostgreSQL, host conductors, and
a warm producer that posts boots as ``imagepipe boot`` does.

The servers are the fleet tests' (tests/functional/servers.py), started in
a temporary directory of their own (PostgreSQL runs as the ``postgres``
user, who must reach its directory) and stopped at the end. A host is a
:class:`harness.State` whose configuration names the host, the shared run
database and the board; its conductor is ``imagepipe conductor``, a
subprocess, its log (stderr) in the host's directory.
"""

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import types

from benchmarks import harness
from imagepipe import flows
from imagepipe.cmd import request as request_args
from imagepipe.conf import loader
from imagepipe.conf import settings as conf_settings
from imagepipe.fleet import board as boards
from imagepipe.runner import driver
from imagepipe.runner import guards
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store
from tests.functional import servers

#: seconds between two looks at a board while waiting for jobs to go
LOOK = 0.001


@contextlib.contextmanager
def started_servers():
    """(redis URL, PostgreSQL URL) of servers running until the end."""
    top = tempfile.mkdtemp(prefix='imagepipe-bench-fleet-')
    os.chmod(top, 0o755)
    redis_dir, pg_dir = os.path.join(top, 'redis'), os.path.join(top, 'pg')
    os.makedirs(redis_dir)
    os.makedirs(pg_dir)
    redis = servers.Redis(redis_dir)
    pg = servers.Postgres(pg_dir)
    try:
        redis.start()
        pg.init()
        pg.start()
        yield redis.url, pg.createdb('runs')
    finally:
        redis.stop()
        with contextlib.suppress(subprocess.CalledProcessError, OSError):
            pg.stop()
        shutil.rmtree(top, ignore_errors=True)


def write_conf(path, host, board_url, db_url, more=''):
    """Add a host's settings to the configuration file ``path``, a
    :class:`harness.State`'s (its ``[DEFAULT]`` section last), then the
    sections in ``more``."""
    with open(path, 'a') as f:
        f.write(f'host = {host}\n[imagepipe]\nconnection = {db_url}\n'
                f'[jobboard]\nconnection = {board_url}\n{more}')


class Host:
    """A host's state dir and configuration (``more``: sections of the
    caller's), its conductor and producer."""

    def __init__(self, env, name, release, board_url, db_url, more=''):
        self.env, self.name, self.release = env, name, release
        self.st = env.state(f'fleet-{name}')
        self.log = os.path.join(self.st.root, 'conductor.log')
        write_conf(self.st.conf, name, board_url, db_url, more)
        self.rconf = loader.load([self.st.conf], release=release)
        self.settings = boards.settings(self.rconf)
        self.store = run_store.RunStore(persistence.open_backend(db_url))
        self.lock_dir = guards.lock_dir(db_url, self.st.state_path)
        self.proc = None
        self._stack = contextlib.ExitStack()
        self.board = self._stack.enter_context(
            boards.opened(self.settings, name, f'bench.{os.getpid()}'))
        self.redis = self.board._client    # taskflow's redis-py client

    def start(self, timeout=60):
        with open(self.log, 'ab') as err:
            self.proc = subprocess.Popen(
                self.st.imagepipe(self.release, 'conductor'),
                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while 'serving host' not in self.log_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise harness.Failed(f'conductor of {self.name} did not '
                                     f'start:\n{self.log_text()[-1500:]}')
            time.sleep(0.02)

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stack.close()

    def post(self, url, instance, root_gb):
        """Build and store the run, post its job (``imagepipe boot``'s
        path, in this warm process); (run id, job)."""
        args = types.SimpleNamespace(image=url, instance=instance,
                                     root_gb=root_gb, ephemeral_gb=0,
                                     swap_mb=0)
        kwargs = {'release': self.release,
                  'settings': conf_settings.snapshot(self.rconf),
                  'request': request_args.from_args(args)}
        flow = flows.factory(**kwargs)
        run_id = driver.create(self.store, kwargs, flow, self.lock_dir)
        return run_id, boards.post(self.board, run_id)

    def wait_gone(self, jobs, timeout=600):
        """Until none of ``jobs`` is on the board; the monotonic time."""
        listings = self.board.listings_key
        left = [j.uuid.encode() for j in jobs]
        deadline = time.monotonic() + timeout
        while left:
            left = [k for k in left if self.redis.hexists(listings, k)]
            if not left:
                break
            if time.monotonic() > deadline:
                raise harness.Failed(f'{len(left)} jobs still on the board '
                                     f'of {self.name} after {timeout} s')
            time.sleep(LOOK)
        return time.perf_counter()

    def outcome(self, run_id):
        """(state, seconds in the steps) of a finished run."""
        fd = self.store.get(run_id)
        if fd.state != 'SUCCESS':
            meta = fd.meta.get('imagepipe', {})
            raise harness.Failed(
                f'run {run_id} on {self.name} ended {fd.state}: '
                f'{meta.get("error")}\n{self.log_text()[-1500:]}')
        return sum((ad.meta or {}).get('duration') or 0.0 for ad in fd)


def boot(host, url, instances, root_gb):
    """Post a boot of each instance at once; (wall seconds, seconds to
    post, [seconds in the steps of each run])."""
    start = time.perf_counter()
    posted = [host.post(url, name, root_gb) for name in instances]
    after_post = time.perf_counter()
    end = host.wait_gone([job for _, job in posted])
    steps = [host.outcome(run_id) for run_id, _ in posted]
    return end - start, after_post - start, steps
