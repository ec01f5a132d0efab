"""What every case uses: state directories, timed commands, tables.

A timed command is wall-clock time around a subprocess, process start-up
included. Before each timed command :meth:`Env.settle` flushes what earlier
runs left dirty (``sync``, untimed) and reads the input image into the page
cache, as a server that just served it would hold it.
"""

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time

MiB = 1024 ** 2
NOVA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nova')


class Failed(RuntimeError):
    """A command of the benchmark failed: the numbers would mean nothing."""


def spread(values):
    """(median, min, max) of ``values``."""
    return statistics.median(values), min(values), max(values)


def fmt_s(seconds):
    return f'{seconds:.3f}'


def fmt_ms(seconds):
    return f'{seconds * 1000:.1f}'


def fmt_x(value):
    return f'{value:.2f}'


def fmt_mib(n):
    return f'{n / MiB:.1f}'


def check(proc, argv):
    if proc.returncode != 0:
        raise Failed(f'exit status {proc.returncode}: '
                     f'{" ".join(map(str, argv))}\n'
                     f'{(proc.stderr or "")[-1500:]}')
    return proc


def timed(argv, **kwargs):
    """Run ``argv``; (seconds, CompletedProcess); Failed unless it exits 0."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    took = time.perf_counter() - start
    return took, check(proc, argv)


def io_written():
    """(write_bytes, cancelled_write_bytes) of this process and its reaped
    children (Linux adds a child's I/O counters to its parent's on wait)."""
    with open('/proc/self/io') as f:
        found = dict(line.split(': ') for line in f.read().splitlines())
    return int(found['write_bytes']), int(found['cancelled_write_bytes'])


def allocated(path):
    return os.stat(path).st_blocks * 512


def cached(paths):
    """{path: bytes resident in the page cache} (util-linux fincore)."""
    paths = [p for p in paths if os.path.exists(p)]
    if not paths:
        return {}
    out = subprocess.run(['fincore', '--bytes', '--noheadings',
                          '--output', 'RES,FILE', *paths],
                         check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        res, path = line.strip().split(None, 1)
        found[path] = int(res)
    return found


def files_under(directory):
    """Regular files under ``directory``, sorted (lock files left out)."""
    found = []
    for top, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != 'locks')
        found += [os.path.join(top, f) for f in sorted(files)]
    return found


class State:
    """One case's own state_path, its imagepipe.conf and instances dir."""

    def __init__(self, env, name):
        self.env = env
        self.root = os.path.join(env.workdir, 'cases', name)
        shutil.rmtree(self.root, ignore_errors=True)
        self.state_path = os.path.join(self.root, 'state')
        self.instances = os.path.join(self.state_path, 'instances')
        os.makedirs(self.state_path)
        self.conf = os.path.join(self.root, 'imagepipe.conf')
        with open(self.conf, 'w') as f:
            f.write(f'[DEFAULT]\nstate_path = {self.state_path}\n')

    def clear(self):
        """Remove the instances and the image cache (runs stay stored)."""
        shutil.rmtree(self.instances, ignore_errors=True)

    def base(self, url):
        name = hashlib.sha1(url.encode()).hexdigest()
        return os.path.join(self.instances, '_base', name)

    def imagepipe(self, release, *args):
        return [self.env.imagepipe, '--config-file', self.conf,
                '--release', release, *args]

    def run(self, release, url, instance, root_gb, *more):
        """argv of ``imagepipe run`` (JSON output: step durations)."""
        return self.imagepipe(release, 'run', '--image', url,
                              '--instance', instance,
                              '--root-gb', str(root_gb),
                              '--format', 'json', *more)

    def nova(self, release, url, instance, root_gb, sync=False):
        """argv of the bare commands Nova ran (benchmarks/nova/*.sh)."""
        argv = ['sh', os.path.join(NOVA, f'{release}.sh'), url,
                self.instances, instance, str(root_gb)]
        return argv + ['sync'] if sync else argv


class Env:
    """The work directory, the served inputs and the run's settings."""

    def __init__(self, workdir, quick, pairs, server, facts):
        self.workdir = workdir
        self.quick = quick
        self.pairs = pairs
        self.server = server
        self.facts = facts
        self.python = sys.executable
        self.imagepipe = (shutil.which('imagepipe',
                                       path=os.path.dirname(sys.executable))
                          or shutil.which('imagepipe'))
        if self.imagepipe is None:
            raise Failed('imagepipe is not installed next to this Python')
        # flavor root disk: one GiB above the image's virtual size
        self.root_gb = facts['virtual_size'] // 1024 ** 3 + 1

    def image(self, name='qcow2'):
        return os.path.join(self.facts['directory'],
                            self.facts['images'][name]['file'])

    def url(self, name='qcow2'):
        return self.server.url(self.facts['images'][name]['file'])

    def state(self, name):
        return State(self, name)

    def settle(self, *hot):
        """Untimed: flush dirty pages, then read ``hot`` files into cache."""
        subprocess.run(['sync'], check=True)
        for path in hot:
            with open(path, 'rb') as f:
                while f.read(8 * MiB):
                    pass


class Table:
    """Rows of strings under a title, shown as text or as reST."""

    def __init__(self, title, headers, rows=None, notes=()):
        self.title, self.headers = title, list(headers)
        self.rows = [list(r) for r in rows or []]
        self.notes = list(notes)

    def add(self, *row):
        self.rows.append([str(v) for v in row])

    def _widths(self):
        cells = [self.headers] + self.rows
        return [max(len(str(r[i])) for r in cells)
                for i in range(len(self.headers))]

    def text(self):
        widths = self._widths()

        def line(cells):
            return '  '.join(str(c).ljust(w)
                             for c, w in zip(cells, widths)).rstrip()
        out = [self.title, line(self.headers),
               line('-' * w for w in widths)]
        out += [line(r) for r in self.rows]
        return '\n'.join(out + [f'  {n}' for n in self.notes])

    def rst(self):
        widths = self._widths()
        rule = '  '.join('=' * w for w in widths)

        def line(cells):
            return '  '.join((str(c) or '-').ljust(w)
                             for c, w in zip(cells, widths)).rstrip()
        out = [f'.. rubric:: {self.title}', '', rule, line(self.headers),
               rule]
        out += [line(r) for r in self.rows] + [rule, '']
        return '\n'.join(out + [f'{n}\n' for n in self.notes])


class Target:
    """One target of the issue: PASS or FAIL with the measured value."""

    def __init__(self, name, wanted, measured, ok):
        self.name, self.wanted, self.measured = name, wanted, measured
        self.ok = ok

    def row(self):
        return [self.name, self.wanted, self.measured,
                'PASS' if self.ok else 'FAIL']


class Result:
    """What a case reports: tables, targets, notes."""

    def __init__(self, number, title):
        self.number, self.title = number, title
        self.tables, self.targets, self.notes = [], [], []
        self.data = {}
