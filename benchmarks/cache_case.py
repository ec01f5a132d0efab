"""Case 8: the image cache at scale: ``cache list`` and ``cache clean
--dry-run`` over 1,000 bases and 5,000 instance disks, against Nova's way of
knowing what backs a disk, one ``qemu-img info`` per disk.

The disks are small sparse files with a real qcow2 header: one overlay made
by ``qemu-img create`` is the template, and each disk is its non-zero
clusters written again with the backing file name of its own base (all
names have one length, so the header stays valid). A fifth of the bases is
used by no disk and three days old (os.utime): the pass removes those.
"""

import hashlib
import os
import subprocess
import time

from benchmarks import harness
from benchmarks.harness import Table
from benchmarks.harness import Target
from benchmarks.harness import fmt_ms
from benchmarks.harness import fmt_s
from benchmarks.harness import spread

BASES = 1000
DISKS = 5000
SAMPLE = 100
UNUSED = BASES // 5
TARGET_S = 5.0
DAY = 86400


def _hex(i):
    return hashlib.sha1(f'bench-{i}'.encode()).hexdigest()


def _template(directory, base):
    """(size, [(offset, bytes)] of the non-zero clusters) of an overlay."""
    path = os.path.join(directory, 'template.qcow2')
    harness.check(subprocess.run(
        ['qemu-img', 'create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', base,
         path, '1G'], capture_output=True, text=True), ['qemu-img create'])
    with open(path, 'rb') as f:
        data = f.read()
    os.unlink(path)
    cluster = 64 * 1024
    pieces = [(off, data[off:off + cluster])
              for off in range(0, len(data), cluster)
              if data[off:off + cluster].strip(b'\0')]
    return len(data), pieces


def build(instances):
    """1,000 bases, 5,000 instance directories with one qcow2 disk each."""
    base_dir = os.path.join(instances, '_base')
    os.makedirs(base_dir)
    old = time.time() - 3 * DAY
    for i in range(BASES):
        path = os.path.join(base_dir, _hex(i))
        with open(path, 'wb') as f:
            f.truncate(1024 * 1024)
        os.utime(path, (old, old))
    first = os.path.join(base_dir, _hex(0)).encode()
    size, pieces = _template(instances, first.decode())
    used = BASES - UNUSED
    for n in range(DISKS):
        name = os.path.join(base_dir, _hex(n % used)).encode()
        directory = os.path.join(instances, f'instance-{n:08x}')
        os.mkdir(directory)
        fd = os.open(os.path.join(directory, 'disk'),
                     os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            for off, data in pieces:
                os.pwrite(fd, data.replace(first, name), off)
            os.ftruncate(fd, size)
        finally:
            os.close(fd)


def cache_at_scale(env, number):
    """cache list and clean --dry-run over 1,000 bases, 5,000 disks."""
    res = harness.Result(number, 'the image cache at scale')
    st = env.state('cache')
    started = time.monotonic()
    build(st.instances)
    made = time.monotonic() - started
    commands = {
        'cache list': st.imagepipe('gazpacho', 'cache', 'list',
                                   '--format', 'json'),
        'cache clean --dry-run': st.imagepipe(
            'gazpacho', 'cache', 'clean', '--dry-run', '--format', 'json'),
        'imagepipe releases (start-up)': st.imagepipe('gazpacho',
                                                      'releases'),
    }
    reps = 1 if env.quick else env.pairs
    times = {k: [] for k in commands}
    for r in range(reps + 1):
        for name, argv in commands.items():
            took, _ = harness.timed(argv)
            if r:
                times[name].append(took)
    disks = sorted(os.path.join(st.instances, d, 'disk')
                   for d in os.listdir(st.instances) if d != '_base')
    sample = disks[::len(disks) // SAMPLE][:SAMPLE]
    t = time.monotonic()
    for disk in sample:
        harness.check(subprocess.run(
            ['qemu-img', 'info', '--force-share', '--output=json', disk],
            capture_output=True, text=True), ['qemu-img info', disk])
    per_info = (time.monotonic() - t) / len(sample)
    table = Table(f'Case {number}: {BASES} bases, {DISKS} instance disks '
                  f'(seconds, median of {reps})',
                  ['command', 'median', 'min', 'max', 'per disk'])
    for name, values in times.items():
        per = fmt_ms(spread(values)[0] / DISKS) + ' ms' if 'cache' in name \
            else ''
        table.add(*[name] + [fmt_s(v) for v in spread(values)], per)
    table.add(f'qemu-img info per disk ({SAMPLE} timed, x {DISKS})',
              fmt_s(per_info * DISKS), '', '', fmt_ms(per_info) + ' ms')
    table.notes.append(f'inputs made in {made:.1f} s (untimed); '
                       f'{UNUSED} bases unused and 3 days old.')
    res.tables.append(table)
    for name in ('cache list', 'cache clean --dry-run'):
        med = spread(times[name])[0]
        res.targets.append(Target(
            f'{name}, {BASES} bases, {DISKS} instance disks',
            f'<= {TARGET_S:.0f} s',
            f'{med:.2f} s (qemu-img info per disk: '
            f'{per_info * DISKS:.1f} s)', med <= TARGET_S))
    res.data = {'times': times, 'qemu_img_info_per_disk': per_info,
                'inputs_seconds': made}
    return res
