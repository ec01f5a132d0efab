"""The real ``imagepipe`` command in subprocesses, for the functional tests
of runs: a state_path, an instances_path and a SQLite run database per test
(:class:`Env`), real images, and what a run left compared file by file.

A crash is a SIGKILL: planted by ``runner_harness.py`` (a listener killing
the process after a step, or in the middle of one) or sent by a test. What a
crashed and resumed run leaves is compared with what a run that was never
interrupted left in the same directories: every file under instances_path
byte for byte (holes read as zeros) and its ``qemu-img info`` (backing chain
included, allocation excluded), and the file list itself, so a leftover
``.part``, ``.converted`` or ``.tmp`` fails the comparison.

e2fsck and resize2fs stamp the superblock with the clock; E2FSCK_TIME and
E2FSPROGS_FAKE_TIME pin it so that two runs can be equal byte for byte.
"""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests import httpserver
from tests import images

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       'runner_harness.py')
MiB = 1024 * 1024
FAKE_TIME = {'E2FSCK_TIME': '1700000000',
             'E2FSPROGS_FAKE_TIME': '1700000000'}
TEMPORARY = ('.part', '.converted', '.tmp', '.directio')
PATH = os.environ.get('PATH', '') + ':/usr/sbin:/sbin'  # e2fsck, resize2fs
#: the steps of the folsom default flow (qcow2 backed by a resized base)
FOLSOM_STEPS = ['root-fetch', 'root-inspect', 'root-convert', 'root-publish',
                'root-copy-base', 'root-resize-base', 'root-resize-fs-base',
                'root-overlay', 'verify']


# -- images -------------------------------------------------------------------

def ext4_qcow2(directory, name, size_mb, data):
    raw = images.make_ext4(os.path.join(directory, f'{name}.raw'), size_mb,
                           files=data)
    return raw, images.convert(raw, os.path.join(directory, f'{name}.qcow2'),
                               'qcow2')


# -- files --------------------------------------------------------------------

def content_digest(path, block=64 * 1024):
    """sha256 of the size and the non-zero blocks (with their offsets).

    Equal for two files with the same bytes whatever their holes, without
    reading the holes of a 1 GiB sparse file.
    """
    h = hashlib.sha256(str(os.path.getsize(path)).encode())
    size = os.path.getsize(path)
    zero = bytes(block)
    with open(path, 'rb') as f:
        fd, off, next_block = f.fileno(), 0, 0
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            hole = os.lseek(fd, data, os.SEEK_HOLE)
            pos = max(data - data % block, next_block)
            while pos < hole:
                buf = os.pread(fd, block, pos)
                if buf != zero[:len(buf)]:
                    h.update(pos.to_bytes(8, 'big') + buf)
                pos += block
            next_block, off = pos, hole
    return h.hexdigest()


def _drop(value, key):
    if isinstance(value, dict):
        return {k: _drop(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_drop(v, key) for v in value]
    return value


def qemu_info(path):
    out = images.sh('qemu-img', 'info', '--output=json', '--backing-chain',
                    '-U', path)
    return _drop(json.loads(out), 'actual-size')


def all_files(top):
    found = []
    for dirpath, _, names in os.walk(top):
        found += [os.path.join(dirpath, n) for n in names]
    return sorted(found)


def snapshot(instances):
    """{relative path: (content digest, qemu-img info)} without lock files."""
    snap = {}
    for path in all_files(instances):
        rel = os.path.relpath(path, instances)
        if rel.split(os.sep)[0] == 'locks':
            continue
        snap[rel] = (content_digest(path), qemu_info(path))
    return snap


def temporaries(top):
    return [p for p in all_files(top) if p.endswith(TEMPORARY)]


def assert_same(got, want, label=''):
    assert sorted(got) == sorted(want), f'{label} not the same files'
    for rel in want:
        assert got[rel][0] == want[rel][0], f'{label} {rel}: content differs'
        assert got[rel][1] == want[rel][1], (
            f'{label} {rel}: qemu-img info differs')


# -- the command line ---------------------------------------------------------

class Result:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    def json(self):
        return json.loads(self.out)

    def error_line(self):
        """stderr, which must be exactly one line."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        return lines[0]

    def __repr__(self):
        return f'rc={self.rc}\nstdout:\n{self.out}\nstderr:\n{self.err}'


class Env:
    """A state_path, an instances_path and a run database for the CLI."""

    def __init__(self, root, instances=None, release='folsom', db=None,
                 state=None):
        self.root = str(root)
        self.state = state or os.path.join(self.root, 'state')
        self.instances = instances or os.path.join(self.root, 'instances')
        self.db = db or os.path.join(self.root, 'runs.sqlite')
        self.release = release
        self.path = PATH
        self.cwd = None
        os.makedirs(self.root, exist_ok=True)
        self.conf = os.path.join(self.root, 'imagepipe.conf')
        with open(self.conf, 'w') as f:
            f.write(f'[DEFAULT]\nstate_path = {self.state}\n'
                    f'instances_path = {self.instances}\n'
                    f'[imagepipe]\nconnection = sqlite:///{self.db}\n')

    def configure(self, text):
        """Append ``text`` (sections and options) to the config file."""
        with open(self.conf, 'a') as f:
            f.write('\n' + text.strip() + '\n')

    def argv(self, args, kill_after=None, kill_during=None, group=False):
        cli = ['--config-file', self.conf, '--release', self.release, *args]
        if not (kill_after or kill_during):
            return [sys.executable, '-m', 'imagepipe.cmd.main', *cli]
        planted = (['--kill-after', kill_after] if kill_after else [])
        planted += (['--kill-during', kill_during] if kill_during else [])
        planted += ['--group'] if group else []
        return [sys.executable, HARNESS, *planted, '--', *cli]

    def environ(self):
        return {**os.environ, **FAKE_TIME, 'PATH': self.path}

    def popen(self, *args, kill_after=None, kill_during=None, group=False):
        """``group``: in a session of its own (its pid is its group id)."""
        return subprocess.Popen(
            self.argv(args, kill_after, kill_during, group),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=self.environ(), start_new_session=group, cwd=self.cwd)

    def cli(self, *args, timeout=120, **planted):
        return finish(self.popen(*args, **planted), timeout)

    def run(self, image, instance='vm1', *more, **planted):
        return self.cli('run', '--image', image, '--instance', instance,
                        '--root-gb', '1', *more, **planted)

    def wipe(self):
        for path in (self.state, self.instances):
            shutil.rmtree(path, ignore_errors=True)
        for suffix in ('', '-wal', '-shm'):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.db + suffix)

    # what the database holds, read directly
    def _db(self):
        return contextlib.closing(sqlite3.connect(self.db))

    def run_ids(self):
        if not os.path.exists(self.db):
            return []
        with self._db() as db:
            return [r[0] for r in db.execute(
                'SELECT uuid FROM flowdetails ORDER BY created_at')]

    def flow_state(self, run_id):
        with self._db() as db:
            return db.execute('SELECT state FROM flowdetails WHERE uuid = ?',
                              (run_id,)).fetchone()[0]

    def steps(self, run_id):
        with self._db() as db:
            return dict(db.execute(
                'SELECT name, state FROM atomdetails WHERE parent_uuid = ?',
                (run_id,)))

    def result(self, run_id, step):
        with self._db() as db:
            row = db.execute(
                'SELECT results FROM atomdetails WHERE parent_uuid = ? AND '
                'name = ?', (run_id, step)).fetchone()
        return json.loads(row[0])

    def edit_meta(self, run_id, change):
        with self._db() as db:
            meta = json.loads(db.execute(
                'SELECT meta FROM flowdetails WHERE uuid = ?',
                (run_id,)).fetchone()[0])
            change(meta)
            db.execute('UPDATE flowdetails SET meta = ? WHERE uuid = ?',
                       (json.dumps(meta), run_id))
            db.commit()


def finish(p, timeout=120):
    """The Result of a process started with Env.popen."""
    out, err = p.communicate(timeout=timeout)
    return Result(p.returncode, out, err)


def first_run_id(result):
    """The id ``run`` prints on its first line."""
    first = result.out.splitlines()[0]
    assert first.startswith('run '), result
    return first.split()[1]


def wait_for(condition, what, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.01)


def killed(result):
    return result.rc == -signal.SIGKILL


def the_part(env):
    parts = [p for p in all_files(env.instances) if p.endswith('.part')]
    return parts[0] if parts else None


def part_size(env):
    """Bytes in the download's .part, 0 while there is none."""
    try:
        return os.path.getsize(the_part(env) or '')
    except FileNotFoundError:
        return 0


# -- tools and mounts --------------------------------------------------------

def qemu_img_wrapper(bin_dir, cases):
    """A PATH whose ``qemu-img`` runs the shell ``case`` items ``cases``
    on its sub-command (e.g. ``convert) ...;;``), else the real one."""
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, 'qemu-img')
    with open(path, 'w') as f:
        f.write(f'#!/bin/sh\nREAL={shutil.which("qemu-img")}\n'
                f'case "$1" in\n{cases}\nesac\nexec "$REAL" "$@"\n')
    os.chmod(path, 0o755)
    return f'{bin_dir}:{PATH}'


@contextlib.contextmanager
def tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}',
                              'tmpfs', path], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f'cannot mount a tmpfs: {mounted.stderr.strip()}')
    try:
        yield path
    finally:
        subprocess.run(['umount', '-l', path], check=False)


def runs_json(env):
    return {r['id']: r for r in env.cli('runs', '--all', '--format',
                                        'json').json()}


def new_gets(env):
    """The GETs of big.qcow2 since the test started."""
    return [g for g in env.server.gets()[env.mark:]
            if g['path'] == '/big.qcow2']


def start_slow_convert(env, tmp_path, rate):
    """A run in a process group of its own, once its convert has started.

    The real qemu-img converts at ``rate`` (a 32 MiB convert takes ~30 ms
    otherwise), so that the convert is surely in progress; ``env.path`` is
    to be reset by the caller.
    """
    env.path = qemu_img_wrapper(
        str(tmp_path / 'bin'),
        f'convert) shift; exec "$REAL" convert -r {rate} "$@";;')
    p = env.popen('run', '--image', env.url, '--instance', 'vm1',
                  '--root-gb', '1', group=True)
    wait_for(lambda: [f for f in all_files(env.instances)
                      if f.endswith('.converted')], 'the convert to start')
    return p


def concurrent_runs(env, image, count, served_dir):
    """``count`` runs of ``image`` at once (instances vm0, vm1...), fetched
    from a server in ``served_dir`` slow enough that they overlap (a
    download lasts 1.5 s): (their results, the server's GETs of it)."""
    os.makedirs(served_dir, exist_ok=True)
    name = os.path.basename(image)
    shutil.copy(image, os.path.join(served_dir, name))
    rate = os.path.getsize(image) / 1.5
    with httpserver.Server(served_dir, rate=rate) as server:
        url = server.url(name)
        procs = [env.popen('run', '--image', url, '--instance', f'vm{i}',
                           '--root-gb', '1') for i in range(count)]
        return [finish(p) for p in procs], server.gets(name)
