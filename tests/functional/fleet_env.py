"""The command line of a fleet host in subprocesses: :class:`HostEnv` is a
runner_env ``Env`` (its own state_path and instances_path, standing in for
a host) whose run database is a shared PostgreSQL database and whose
jobboard is a real redis-server."""

import contextlib
import json
import os
import signal
import subprocess
import sys

import sqlalchemy as sa

from tests.functional.runner_env import Env
from tests.functional.runner_env import snapshot
from tests.functional.runner_env import wait_for


class HostEnv(Env):
    def __init__(self, root, db_url, board_url=None, host='host-a',
                 expiration=None, max_jobs=None, release='folsom'):
        super().__init__(root, release=release)
        self.db_url, self.board_url, self.host = db_url, board_url, host
        self.conductors = []
        lines = [f'[DEFAULT]\nstate_path = {self.state}',
                 f'instances_path = {self.instances}', f'host = {host}',
                 f'[imagepipe]\nconnection = {db_url}']
        if board_url:
            lines.append(f'[jobboard]\nconnection = {board_url}')
            if expiration:
                lines.append(f'expiration_time = {expiration}')
            if max_jobs:
                lines.append(f'max_concurrent_jobs = {max_jobs}')
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    @contextlib.contextmanager
    def _sql(self):
        engine = sa.create_engine(self.db_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            yield conn

    def run_ids(self):
        with self._sql() as db:
            return [r[0] for r in db.execute(sa.text(
                'SELECT uuid FROM flowdetails ORDER BY created_at'))]

    def flow_state(self, run_id):
        with self._sql() as db:
            return db.execute(sa.text(
                'SELECT state FROM flowdetails WHERE uuid = :u'),
                {'u': run_id}).scalar()

    def steps(self, run_id):
        with self._sql() as db:
            return dict(db.execute(sa.text(
                'SELECT name, state FROM atomdetails WHERE parent_uuid = :u'),
                {'u': run_id}).all())

    def result(self, run_id, step):
        with self._sql() as db:
            value = db.execute(sa.text(
                'SELECT results FROM atomdetails WHERE parent_uuid = :u AND '
                'name = :n'), {'u': run_id, 'n': step}).scalar()
        return json.loads(value) if isinstance(value, str) else value

    def conductor(self, *more, log=None):
        """``imagepipe conductor`` in a process group of its own, its log
        (stderr) to the file ``log``."""
        log = log or os.path.join(self.root, 'conductor.log')
        with open(log, 'ab') as err:
            proc = subprocess.Popen(
                [sys.executable, '-m', 'imagepipe.cmd.main', '--config-file',
                 self.conf, '--release', self.release, 'conductor', *more],
                stdout=subprocess.DEVNULL, stderr=err, env=self.environ(),
                start_new_session=True)
        self.conductors.append(proc)
        return proc

    def stop_conductors(self):
        """Kill every conductor this host started that is still running
        (a failed test must not leave one serving)."""
        for proc in self.conductors:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def jobs(self, *more):
        r = self.cli('jobs', '--format', 'json', *more)
        assert r.rc == 0, r
        return r.json()


def stop(proc, sig=signal.SIGTERM, timeout=60):
    """Signal a conductor; its exit status."""
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def wait_log(path, text, timeout=60):
    def found():
        if not os.path.exists(path):
            return False
        with open(path) as f:
            return text in f.read()
    return wait_for(found, f'{text!r} in {path}', timeout)


def uninterrupted(env, url):
    """What a run of ``url`` makes when nothing stops it (run in-process
    on ``env``, which is wiped after): a snapshot to compare with."""
    r = env.run(url)
    assert r.rc == 0, r
    want = snapshot(env.instances)
    env.wipe()
    return want
