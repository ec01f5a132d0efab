"""The cases: (A) ``imagepipe run`` against (B) the bare commands.

Each case function takes the :class:`harness.Env` and returns a
:class:`harness.Result`. A and B run alternately (A B A B ...), so drift of
the shared machine hits both alike; a ratio is the median of the per-pair
ratios.
"""

import json
import os
import signal
import subprocess
import time

from benchmarks import cache_case
from benchmarks import fleet_case
from benchmarks import harness
from benchmarks import nova_peer
from benchmarks.harness import MiB
from benchmarks.harness import Table
from benchmarks.harness import Target
from benchmarks.harness import fmt_mib
from benchmarks.harness import fmt_ms
from benchmarks.harness import fmt_s
from benchmarks.harness import fmt_x
from benchmarks.harness import spread

#: The targets of case 6 as multiples of what plain taskflow costs on the
#: machine of perf-baseline.md (8 no-op steps without persistence: 5.5 ms;
#: ``import taskflow.engines``: 0.108 s), to read them on a slower machine.
REF_ENGINE_X = 25 / 5.5
REF_START_X = 0.3 / 0.108

#: fetch.py's chunk (imagepipe.sources.base.CHUNK_SIZE)
CHUNK = 1 * MiB

#: The step after which neither intermediate file may hold page cache: the
#: convert has read the .part (and removed it) and written the .converted.
DONE_WITH_INTERMEDIATES = 'root-convert'


def _inproc(env, *args):
    """``python -m benchmarks.inproc ARGS``: its JSON."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = harness.check(subprocess.run(
        [env.python, '-m', 'benchmarks.inproc', *args], cwd=root,
        capture_output=True, text=True), ['benchmarks.inproc', *args])
    return json.loads(proc.stdout)


def _spread_row(label, values, fmt=fmt_s):
    med, lo, hi = spread(values)
    return [label, fmt(med), fmt(lo), fmt(hi)]


def _steps(stdout):
    """{step: seconds} from ``imagepipe run --format json``."""
    return {s['step']: s['duration'] or 0.0
            for s in json.loads(stdout)['steps']}


# -- cases 1 and 2 -----------------------------------------------------------

def cold_boot(env, number, release):
    """Nothing cached: download, convert, the release's disk steps."""
    res = harness.Result(number, f'cold boot, {release} defaults')
    st = env.state(f'cold-{release}')
    url, image = env.url(), env.image()
    arms = {
        'A': lambda i: st.run(release, url, f'a{i}', env.root_gb),
        'B': lambda i: st.nova(release, url, f'b{i}', env.root_gb),
        'B+sync': lambda i: st.nova(release, url, f's{i}', env.root_gb,
                                    sync=True),
    }
    times = {arm: [] for arm in arms}
    steps = []
    for i in range(env.pairs + (0 if env.quick else 1)):
        for arm, argv in arms.items():
            st.clear()
            env.settle(image)
            env.server.reset()
            took, proc = harness.timed(argv(i))
            gets = len(env.server.gets())
            if gets != 1:
                raise harness.Failed(f'{arm} made {gets} downloads, not 1')
            if env.quick or i:          # the first round warms up
                times[arm].append(took)
                if arm == 'A':
                    steps.append(_steps(proc.stdout))
    a, b, bs = times['A'], times['B'], times['B+sync']
    pairs = Table(
        f'Case {number}: cold boot, {release} (seconds per boot)',
        ['pair', 'A imagepipe', 'B Nova cmds', 'B+sync', 'A/B',
         'A/(B+sync)'])
    for k, (ta, tb, ts) in enumerate(zip(a, b, bs), 1):
        pairs.add(k, fmt_s(ta), fmt_s(tb), fmt_s(ts), fmt_x(ta / tb),
                  fmt_x(ta / ts))
    ratio = [x / y for x, y in zip(a, b)]
    ratio_sync = [x / y for x, y in zip(a, bs)]
    summary = Table(f'Case {number}: cold boot, {release}, summary',
                    ['', 'median', 'min', 'max'])
    summary.rows += [_spread_row('A (s)', a), _spread_row('B (s)', b),
                     _spread_row('B+sync (s)', bs),
                     _spread_row('A/B', ratio, fmt_x),
                     _spread_row('A/(B+sync)', ratio_sync, fmt_x)]
    where = Table(f'Case {number}: where A spends its time (median seconds '
                  'over the timed runs)', ['part of A', 'seconds',
                                           'share of A'])
    med_a = spread(a)[0]
    names = list(steps[0])
    for name in names:
        t = spread([s[name] for s in steps])[0]
        where.add(name, fmt_s(t), f'{t / med_a:.0%}')
    rest = spread([x - sum(s.values()) for x, s in zip(a, steps)])[0]
    where.add('outside the steps (start-up, engine, SQLite)', fmt_s(rest),
              f'{rest / med_a:.0%}')
    res.tables += [pairs, summary, where]
    med = spread(ratio)[0]
    res.targets.append(Target(
        f'cold boot {release}: A/B', '<= 1.10', f'{med:.2f}', med <= 1.10))
    res.data = {'A': a, 'B': b, 'B+sync': bs, 'steps': steps}
    return res


def cold_folsom(env, number):
    """Cold boot, folsom: download, convert, resized copy, overlay."""
    return cold_boot(env, number, 'folsom')


def cold_grizzly(env, number):
    """Cold boot, grizzly: download, convert, overlay, resize."""
    return cold_boot(env, number, 'grizzly')


# -- case 3 ------------------------------------------------------------------

def warm_boot(env, number):
    """Instances on an already cached base (grizzly: overlay + resize)."""
    res = harness.Result(number, 'warm boot from a cached base')
    release = 'grizzly'
    st = env.state('warm')
    url = env.url()
    env.settle(env.image())
    harness.timed(st.run(release, url, 'seed', env.root_gb))
    base = st.base(url)
    size = str(env.root_gb << 30)
    count = 3 if env.quick else 20
    a, b = [], []
    for i in range(count):
        env.settle()
        took, _ = harness.timed(st.run(release, url, f'wa{i}', env.root_gb))
        a.append(took)
        disk = os.path.join(st.instances, f'wb{i}', 'disk')
        env.settle()
        took, _ = harness.timed(['sh', '-c', (
            f'mkdir -p {os.path.dirname(disk)} && '
            f'qemu-img create -f qcow2 -o backing_file={base},'
            f'backing_fmt=raw {disk} >/dev/null && '
            f'qemu-img resize {disk} {size} >/dev/null')])
        b.append(took)
    inproc = _inproc(env, 'warm', '--conf', st.conf, '--release', release,
                     '--image', url, '--root-gb', str(env.root_gb),
                     '--lock-dir', os.path.join(st.state_path, 'locks'),
                     '--count', str(count))['instances']
    total = [r['total'] for r in inproc]
    tools = [r['tools'] for r in inproc]
    overhead = [t - u for t, u in zip(total, tools)]
    pairs = Table(f'Case {number}: warm boot, {count} instances '
                  '(seconds per instance)',
                  ['instance', 'A imagepipe run', 'B create+resize', 'A/B',
                   'A in-process', 'its commands', 'A in-process/B'])
    for k in range(count):
        pairs.add(k + 1, fmt_s(a[k]), fmt_s(b[k]), fmt_x(a[k] / b[k]),
                  fmt_s(total[k]), fmt_s(tools[k]), fmt_x(total[k] / b[k]))
    summary = Table(f'Case {number}: warm boot, summary (ms per instance)',
                    ['', 'median', 'min', 'max'])
    summary.rows += [
        _spread_row('A: imagepipe run (subprocess)', a, fmt_ms),
        _spread_row('B: qemu-img create + resize', b, fmt_ms),
        _spread_row('A - B (subprocess)', [x - y for x, y in zip(a, b)],
                    fmt_ms),
        _spread_row('A in-process (driver.start, warm process)', total,
                    fmt_ms),
        _spread_row('  of which external commands', tools, fmt_ms),
        _spread_row('  engine + persistence + Python (A in-process - '
                    'commands)', overhead, fmt_ms),
        _spread_row('A in-process - B', [x - y for x, y in zip(total, b)],
                    fmt_ms),
    ]
    calls = Table(f'Case {number}: commands one warm boot runs (A, '
                  'in-process, median of the instances)',
                  ['command', 'calls', 'ms'])
    per = {}
    for r in inproc:
        seen = {}
        for name, t in r['calls']:
            n, spent = seen.get(name, (0, 0.0))
            seen[name] = (n + 1, spent + t)
        for name, value in seen.items():
            per.setdefault(name, []).append(value)
    for name, values in per.items():
        calls.add(name, values[0][0],
                  fmt_ms(spread([t for _, t in values])[0]))
    res.tables += [pairs, summary, calls]
    med = spread(overhead)[0]
    res.targets.append(Target(
        'warm boot: engine + persistence overhead per instance, in-process',
        '<= 50 ms', f'{med * 1000:.1f} ms', med <= 0.050))
    sub = spread([x - y for x, y in zip(a, b)])[0]
    res.targets.append(Target(
        'warm boot: A - B per instance, subprocess (start-up included)',
        '<= 50 ms', f'{sub * 1000:.1f} ms', sub <= 0.050))
    res.data = {'A': a, 'B': b, 'inproc': inproc}
    return res


# -- case 4 ------------------------------------------------------------------

def _together(argvs):
    """Start every argv at once; (wall seconds, [(seconds, stdout)])."""
    start = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for argv in argvs]
    ended = {}
    while len(ended) < len(procs):
        for k, p in enumerate(procs):
            if k not in ended and p.poll() is not None:
                ended[k] = time.perf_counter() - start
        time.sleep(0.002)
    took = max(ended.values())
    done = []
    for k, (p, argv) in enumerate(zip(procs, argvs)):
        out, err = p.communicate()
        harness.check(subprocess.CompletedProcess(argv, p.returncode, out,
                                                  err), argv)
        done.append((ended[k], out))
    return took, done


def concurrent_boots(env, number):
    """8 boots of one uncached image at once, as 8 processes."""
    res = harness.Result(number, '8 concurrent cold boots of one image')
    release, n = 'grizzly', 8
    st = env.state('concurrent')
    url, image = env.url(), env.image()
    arms = {
        'A x1': lambda r: [st.run(release, url, f'a1-{r}', env.root_gb)],
        f'A x{n}': lambda r: [st.run(release, url, f'a{n}-{r}-{k}',
                                     env.root_gb) for k in range(n)],
        'B x1': lambda r: [st.nova(release, url, f'b1-{r}', env.root_gb)],
        f'B x{n}': lambda r: [st.nova(release, url, f'b{n}-{r}-{k}',
                                      env.root_gb) for k in range(n)],
    }
    seen = {arm: {'wall': [], 'gets': [], 'written': [], 'cancelled': [],
                  'base_dir': []} for arm in arms}
    parts = {arm: [] for arm in arms if arm.startswith('A')}
    rounds = env.pairs
    for r in range(rounds):
        for arm, argvs in arms.items():
            st.clear()
            env.settle(image)
            env.server.reset()
            w0, c0 = harness.io_written()
            took, done = _together(argvs(r))
            w1, c1 = harness.io_written()
            if arm in parts:
                parts[arm] += [(t, _steps(out)) for t, out in done]
            got = seen[arm]
            got['wall'].append(took)
            got['gets'].append(len(env.server.gets()))
            got['written'].append(w1 - w0)
            got['cancelled'].append(c1 - c0)
            base_dir = os.path.join(st.instances, '_base')
            got['base_dir'].append(sum(harness.allocated(f) for f in
                                       harness.files_under(base_dir)))
    table = Table(f'Case {number}: {n} concurrent cold boots vs one '
                  f'({release}; median of {rounds} rounds)',
                  ['arm', 'wall s (min-max)', 'x one boot', 'downloads',
                   'written MiB', 'of which cancelled', '_base MiB'])
    one = {'A': seen['A x1']['wall'], 'B': seen['B x1']['wall']}
    for arm, got in seen.items():
        med, lo, hi = spread(got['wall'])
        rel = [x / y for x, y in zip(got['wall'], one[arm[0]])]
        table.add(arm, f'{fmt_s(med)} ({fmt_s(lo)}-{fmt_s(hi)})',
                  fmt_x(spread(rel)[0]),
                  '/'.join(str(g) for g in sorted(set(got['gets']))),
                  fmt_mib(spread(got['written'])[0]),
                  fmt_mib(spread(got['cancelled'])[0]),
                  fmt_mib(spread(got['base_dir'])[0]))
    a_rel = spread([x / y for x, y in zip(seen[f'A x{n}']['wall'],
                                          one['A'])])[0]
    ab = spread([x / y for x, y in zip(seen[f'A x{n}']['wall'],
                                       seen[f'B x{n}']['wall'])])[0]
    table.notes.append(f'A x{n} / B x{n} (median of the per-round ratios): '
                       f'{ab:.2f}. "written" is write_bytes of the '
                       'processes (/proc/PID/io), at the time pages are '
                       'dirtied or written directly; "cancelled" are dirty '
                       'pages of files deleted before writeback.')
    where = Table(f'Case {number}: where each A process spends its time '
                  '(median over the processes of all rounds, seconds)',
                  ['arm', 'process', 'fetch section (lock wait incl.)',
                   'disk section (lock wait incl.)',
                   'outside the steps (start-up, engine, SQLite)'])
    fetch_steps = ('root-fetch', 'root-inspect', 'root-convert',
                   'root-publish')
    for arm, found in parts.items():
        total = [t for t, _ in found]
        fetch = [sum(s[k] for k in fetch_steps) for _, s in found]
        disk = [sum(v for k, v in s.items() if k not in fetch_steps)
                for _, s in found]
        outside = [t - sum(s.values()) for t, s in found]
        where.add(arm, *(fmt_s(spread(v)[0])
                         for v in (total, fetch, disk, outside)))
    res.tables += [table, where]
    downloads = set(seen[f'A x{n}']['gets'])
    res.targets.append(Target(
        f'{n} concurrent cold boots: downloads', 'exactly 1',
        '/'.join(map(str, sorted(downloads))), downloads == {1}))
    res.targets.append(Target(
        f'{n} concurrent cold boots: wall / one cold boot', '<= 1.3',
        f'{a_rel:.2f}', a_rel <= 1.3))
    res.data = seen
    return res


# -- case 5 ------------------------------------------------------------------

def _label(path, hexname):
    """A file of the instances dir, its cache name shortened to $hex."""
    return path.replace(hexname, '$hex')


def footprint(env, number):
    """Allocated blocks and page cache of what a cold boot leaves."""
    res = harness.Result(number, 'sparse files and page cache')
    release = 'folsom'
    st = env.state('footprint')
    data = env.facts['data_bytes']
    inputs = ['qcow2', 'raw', 'qcow2-zlib']
    table = Table(f'Case {number}: files left by a cold boot ({release}): '
                  f'allocated vs the image data ({fmt_mib(data)} MiB), '
                  'page cache held', ['input', 'arm', 'file', 'allocated MiB',
                                      'x data', 'cached MiB'])
    worst_alloc, cache_ok = 0.0, True
    cache_rows = []
    for name in inputs:
        url = env.url(name)
        for arm in ('A', 'B'):
            st.clear()
            env.settle(env.image(name))
            inst = f'{arm.lower()}-{name}'
            argv = (st.run(release, url, inst, env.root_gb) if arm == 'A'
                    else st.nova(release, url, inst, env.root_gb))
            harness.timed(argv)
            base = st.base(url)
            files = harness.files_under(st.instances)
            resident = harness.cached(files)
            for f in files:
                alloc = harness.allocated(f)
                table.add(name, arm, _label(os.path.relpath(f, st.instances),
                                            os.path.basename(base)),
                          fmt_mib(alloc),
                          fmt_x(alloc / data), fmt_mib(resident.get(f, 0)))
            if arm == 'A':
                worst_alloc = max(worst_alloc,
                                  abs(harness.allocated(base) / data - 1))
                left = sum(resident.values())
                cache_rows.append((name, left, harness.allocated(base)))
                cache_ok &= left <= harness.allocated(base)
    res.tables.append(table)
    # the page cache of the intermediate files, seen from inside a run
    st.clear()
    url = env.url('qcow2')
    env.settle(env.image('qcow2'))
    seen = _inproc(env, 'footprint', '--conf', st.conf, '--release', release,
                   '--image', url, '--root-gb', str(env.root_gb),
                   '--lock-dir', os.path.join(st.state_path, 'locks'),
                   '--instance', 'inproc')['steps']
    hexname = os.path.basename(st.base(url))
    steps = Table(f'Case {number}: page cache after each step of A '
                  f'({release}, qcow2 input, in-process), MiB cached / '
                  'allocated', ['after step', 'file', 'cached', 'allocated'])
    intermediate_ok = True
    for entry in seen:
        for fname, facts in entry['files'].items():
            steps.add(entry['step'], _label(fname, hexname),
                      fmt_mib(facts['cached']),
                      fmt_mib(facts['allocated']))
            if (entry['step'] == DONE_WITH_INTERMEDIATES
                    and fname.endswith(('.part', '.converted'))):
                intermediate_ok &= facts['cached'] <= CHUNK
    res.tables.append(steps)
    res.targets.append(Target(
        'sparse: allocated bytes of the base vs the image data',
        'within 1%', f'{worst_alloc:.1%} (worst input)', worst_alloc <= 0.01))
    res.targets.append(Target(
        'page cache: .part and .converted not left in cache (after '
        'root-convert)', '<= 1 chunk', 'none left' if intermediate_ok
        else 'left in cache', intermediate_ok))
    left = ', '.join(f'{n} {fmt_mib(c)}/{fmt_mib(b)}'
                     for n, c, b in cache_rows)
    res.targets.append(Target(
        'page cache after a cold boot <= allocated size of the base',
        '<= 1.0 x base', f'MiB cached/base: {left}', cache_ok))
    res.data = {'steps': seen}
    return res


# -- case 6 ------------------------------------------------------------------

def engine_overhead(env, number):
    """No-op flows through the runner, and the command's start-up."""
    res = harness.Result(number, 'engine overhead and cold start')
    st = env.state('engine')
    runs_n = 5 if env.quick else 20
    found = _inproc(env, 'engine', '--dir', st.root, '--steps', '8', '32',
                    '--runs', str(runs_n), '--warmup', '2')
    per = found['steps']
    table = Table(f'Case {number}: no-op flows in a warm process '
                  f'(ms per run, median of {runs_n})',
                  ['steps', 'taskflow, no persistence',
                   'create + drive (SQLite)', 'of which create',
                   'driver.start (SQLite)', 'SQLite / no persistence'])
    for steps in ('8', '32'):
        row = per[steps]
        table.add(steps, fmt_ms(spread(row['bare'])[0]),
                  fmt_ms(spread(row['drive'])[0]),
                  fmt_ms(spread(row['create'])[0]),
                  fmt_ms(spread(row['start'])[0]),
                  fmt_x(spread([x / y for x, y in zip(row['drive'],
                                                      row['bare'])])[0]))
    d8 = spread(per['8']['drive'])[0]
    d32 = spread(per['32']['drive'])[0]
    b8 = spread(per['8']['bare'])[0]
    b32 = spread(per['32']['bare'])[0]
    table.notes.append(
        f'per step: {fmt_ms((d32 - d8) / 24)} ms with SQLite, '
        f'{fmt_ms((b32 - b8) / 24)} ms without; open_backend '
        f'{fmt_ms(found["open_backend"])} ms once per process; listing all '
        f'{found["stored_runs"]["after"]} stored runs '
        f'{fmt_ms(found["list_all_runs"])} ms, finding the runs of one '
        f'instance among them (what driver.start does before every run) '
        f'{fmt_ms(found["runs_of_instance"])} ms.')
    res.tables.append(table)
    res.targets.append(Target(
        'engine overhead per run, 8 steps, SQLite, warm process',
        '<= 25 ms', f'{d8 * 1000:.1f} ms ({d8 / b8:.1f}x taskflow alone; '
        f'25 ms is {REF_ENGINE_X:.1f}x on the reference machine)',
        d8 <= 0.025))
    # cold start of the command, interleaved with references
    commands = {
        'python -c pass': [env.python, '-c', 'pass'],
        'python -c "import taskflow.engines"': [
            env.python, '-c', 'import taskflow.engines'],
        'imagepipe --help': [env.imagepipe, '--help'],
        'imagepipe releases': [env.imagepipe, 'releases'],
    }
    times = {k: [] for k in commands}
    reps = 2 if env.quick else 7
    for r in range(reps + 1):
        for name, argv in commands.items():
            took, _ = harness.timed(argv)
            if r:
                times[name].append(took)
    start = Table(f'Case {number}: cold start (seconds, {reps} runs '
                  'interleaved)', ['command', 'median', 'min', 'max',
                                   'x import taskflow.engines'])
    ref = times['python -c "import taskflow.engines"']
    for name, values in times.items():
        start.add(*_spread_row(name, values),
                  fmt_x(spread([x / y for x, y in zip(values, ref)])[0]))
    res.tables.append(start)
    worst = max(spread(times['imagepipe --help'])[0],
                spread(times['imagepipe releases'])[0])
    rel = worst / spread(ref)[0]
    res.targets.append(Target(
        'cold start (imagepipe --help, releases)', '<= 0.3 s',
        f'{worst:.3f} s ({rel:.1f}x import taskflow.engines; '
        f'0.3 s is {REF_START_X:.1f}x on the reference machine)',
        worst <= 0.3))
    res.data = {'engine': found, 'start': times}
    return res


# -- case 7 ------------------------------------------------------------------

def _wait_for(path, size, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise harness.Failed('the run ended before it could be killed')
        try:
            if os.stat(path).st_size >= size:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise harness.Failed(f'{path} did not reach {size} bytes')


def resume(env, number):
    """A run killed mid-download (SIGKILL), then resumed."""
    res = harness.Result(number, 'resume after a kill mid-download')
    release = 'grizzly'
    st = env.state('resume')
    url, image = env.url(), env.image()
    size = os.path.getsize(image)
    seconds = 1.5 if env.quick else 4.0
    fractions = [0.5] if env.quick else [0.25, 0.5, 0.75]
    table = Table(f'Case {number}: kill -9 during the download '
                  f'(throttled to {fmt_mib(size / seconds)} MiB/s), then '
                  '"imagepipe resume"', [
                      'killed at', '.part at kill (MiB)',
                      'sent before kill (MiB)', 'resume GETs (Range)',
                      'resume downloaded (MiB)', 'missing + 1 chunk (MiB)',
                      'total / image'])
    ok = True
    for k, fraction in enumerate(fractions):
        st.clear()
        env.settle(image)
        env.server.reset()
        env.server.rate = size / seconds
        part = st.base(url) + '.part'
        proc = subprocess.Popen(
            st.imagepipe(release, 'run', '--image', url, '--instance',
                         f'r{k}', '--root-gb', str(env.root_gb)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            run_id = proc.stdout.readline().split()[1]
            _wait_for(part, int(size * fraction), proc, 10 * seconds)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        have = os.stat(part).st_size
        before = sum(g['sent'] for g in env.server.gets())
        env.server.rate = None
        env.server.reset()
        harness.timed(st.imagepipe(release, 'resume', run_id))
        gets = env.server.gets()
        again = sum(g['sent'] for g in gets)
        allowed = size - have + CHUNK
        ok &= again <= allowed and os.path.exists(st.base(url))
        table.add(f'{fraction:.0%}', fmt_mib(have), fmt_mib(before),
                  ', '.join(g['range'] or 'none' for g in gets),
                  fmt_mib(again), fmt_mib(allowed),
                  fmt_x((before + again) / size))
    res.tables.append(table)
    res.targets.append(Target(
        'resume after a kill mid-download: bytes downloaded again',
        '<= missing + 1 chunk', 'yes' if ok else 'no', ok))
    return res


CASES = {
    1: cold_folsom,
    2: cold_grizzly,
    3: warm_boot,
    4: concurrent_boots,
    5: footprint,
    6: engine_overhead,
    7: resume,
    8: cache_case.cache_at_scale,
    9: fleet_case.through_conductor,
    10: nova_peer.nova_peer,
}
