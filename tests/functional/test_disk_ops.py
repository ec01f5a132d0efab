"""[compute] max_concurrent_disk_ops across ``imagepipe run`` processes:
with 1, two runs of two images started at once never download or convert
at the same time, and both make the disks a run alone makes; with 0 (the
default) no slot file is made."""

import os
import subprocess
import time

from tests import httpserver
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import finish
from tests.functional.runner_env import qemu_img_wrapper

#: the wrapper's qemu-img appends "convert <pid> start|end <epoch>" lines
LOGGED_CONVERT = ('convert) echo "convert $$ start $(date +%s.%N)" >> {log}; '
                  '"$REAL" "$@"; rc=$?; '
                  'echo "convert $$ end $(date +%s.%N)" >> {log}; '
                  'exit $rc;;')


class _TimedServer(httpserver.Server):
    """The test server, noting when each GET began and when it had sent
    its whole answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.times = []
        owner = self

        class Timed(self._httpd.RequestHandlerClass):
            def do_GET(self):
                began = time.time()
                super().do_GET()
                with owner._lock:
                    owner.times.append((self.path, began, time.time()))

        self._httpd.RequestHandlerClass = Timed


def _converts(log):
    """(start, end) of each qemu-img convert the wrapper ran."""
    began, spans = {}, []
    with open(log) as f:
        for line in f:
            _, pid, word, when = line.split()
            if word == 'start':
                began[pid] = float(when)
            else:
                spans.append((began.pop(pid), float(when)))
    assert not began
    return spans


def test_one_slot_runs_one_download_or_convert_at_a_time(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    raws = {}
    for name in ('one', 'two'):
        raws[name], _ = ext4_qcow2(str(served), name, 32,
                                   {'data.bin': os.urandom(4 * MiB)})
    env = Env(tmp_path / 'env', release='gazpacho')
    env.configure('[compute]\nmax_concurrent_disk_ops = 1')
    log = tmp_path / 'converts.log'
    env.path = qemu_img_wrapper(str(tmp_path / 'bin'),
                                LOGGED_CONVERT.format(log=log))
    # a second a download: two at once would surely overlap
    rate = os.path.getsize(served / 'one.qcow2')
    with _TimedServer(str(served), rate=rate) as server:
        procs = {name: env.popen('run', '--image', server.url(f'{name}.qcow2'),
                                 '--instance', f'vm-{name}', '--root-gb', '1')
                 for name in raws}
        results = {name: finish(p) for name, p in procs.items()}
        downloads = [(b, e) for _, b, e in server.times]
    assert all(r.rc == 0 for r in results.values()), results
    converts = _converts(log)
    assert len(downloads) == 2 and len(converts) == 2
    spans = sorted(downloads + converts)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start, f'disk operations overlapped: {spans}'
    for name, raw in raws.items():
        disk = os.path.join(env.instances, f'vm-{name}', 'disk')
        assert subprocess.run(['qemu-img', 'compare', raw, disk],
                              capture_output=True).returncode == 0
    bases = os.path.join(env.instances, '_base')
    assert sorted(content_digest(os.path.join(bases, b))
                  for b in os.listdir(bases)) == sorted(
        content_digest(raw) for raw in raws.values())
    assert sorted(f for f in os.listdir(os.path.join(env.instances, 'locks'))
                  if 'disk-ops' in f) == ['imagepipe-disk-ops.0']


def test_no_limit_makes_no_slot_file(tmp_path):
    served = tmp_path / 'served'
    served.mkdir()
    _, qcow2 = ext4_qcow2(str(served), 'one', 32, {'a.txt': b'a' * 4096})
    env = Env(tmp_path / 'env', release='gazpacho')
    ran = env.run(qcow2)
    assert ran.rc == 0, ran
    locks = os.listdir(os.path.join(env.instances, 'locks'))
    assert locks and not [f for f in locks if 'disk-ops' in f]

