"""Case 10: Nova's own image code as a contender, beside imagepipe.

Four arms boot the same qcow2 image from one fake Glance
(:mod:`benchmarks.fake_glance`, read by glanceclient and by imagepipe's
Glance source alike), gazpacho defaults (today's Nova: qcow2 overlay on a
raw base, force_raw_images):

``Nova in-process``
    nova 33 in a venv of its own (:mod:`benchmarks.nova_venv`), one process
    kept for the whole case (:mod:`benchmarks.nova_peer_driver`), as
    nova-compute is.
``imagepipe in-process``
    the same, for imagepipe (:mod:`benchmarks.peer_inproc`).
``imagepipe run``
    a process per boot, as users run it today.
``imagepipe through a conductor``
    as the fleet runs it (:mod:`benchmarks.fleet_env`, case 9's): one
    ``imagepipe conductor`` of its host, on its own redis-server and
    PostgreSQL started once for the case; this process, a warm producer,
    builds, stores and posts each run as ``imagepipe boot`` does and the
    boot is timed from the post to the job gone from the board (the run
    SUCCESS in the shared database).

Each round empties every arm's instances_path for a cold boot, then boots
:data:`WARM` more instances on the cached base; the arms alternate boot by
boot, each after :meth:`harness.Env.settle`. The first round warms the
processes up and is not timed. The servers and the long-lived processes
are started once, before the first round, and stopped at the end of the
case, whatever ends it. Every boot's result is checked: one download, an
instance disk that is a qcow2 of the flavor's size on the raw base.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys

from benchmarks import fake_glance
from benchmarks import fleet_env
from benchmarks import harness
from benchmarks import nova_venv
from benchmarks.harness import Table
from benchmarks.harness import Target
from benchmarks.harness import fmt_ms
from benchmarks.harness import fmt_s
from benchmarks.harness import fmt_x
from benchmarks.harness import spread

RELEASE = 'gazpacho'
#: warm boots per round
WARM = 3
HERE = os.path.dirname(os.path.abspath(__file__))
CONDUCTOR = 'imagepipe through a conductor'
ARMS = ('Nova in-process', 'imagepipe in-process', 'imagepipe run',
        CONDUCTOR)
#: the arms measured against Nova by a target
CONTENDERS = ('imagepipe run', CONDUCTOR)


def _info(path):
    proc = harness.check(subprocess.run(
        ['qemu-img', 'info', '--output=json', '--force-share', path],
        capture_output=True, text=True), ['qemu-img', 'info', path])
    return json.loads(proc.stdout)


def check_disk(who, disk, base, root_gb, image_size):
    """Failed unless ``disk`` is a qcow2 of ``root_gb`` GiB whose backing
    file is ``base``, a raw file of ``image_size`` bytes."""
    problems = []
    if not os.path.isfile(base):
        problems.append(f'no base {base}')
    else:
        got = _info(base)
        if got['format'] != 'raw' or got['virtual-size'] != image_size:
            problems.append(f'base {got["format"]} of {got["virtual-size"]}'
                            f' bytes, not raw of {image_size}')
    got = _info(disk) if os.path.isfile(disk) else {'format': 'missing'}
    wanted = {'format': 'qcow2', 'virtual-size': root_gb << 30,
              'full-backing-filename': base,
              'backing-filename-format': 'raw'}
    problems += [f'disk {key} {got.get(key)!r}, not {value!r}'
                 for key, value in wanted.items() if got.get(key) != value]
    if problems:
        raise harness.Failed(f'{who} did not make the disk it should '
                             f'({disk}): ' + '; '.join(problems))


class _Peer:
    """A process that boots one instance per line it reads (a driver)."""

    def __init__(self, argv, log_path, **kwargs):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, 'w')
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self._log, text=True, **kwargs)

    def line(self):
        out = self.proc.stdout.readline()
        if not out:
            self.proc.wait()
            with open(self.log_path) as f:
                tail = f.read()[-1500:]
            raise harness.Failed(f'{" ".join(self.argv[:3])} ended '
                                 f'({self.proc.returncode}):\n{tail}')
        return json.loads(out)

    def boot(self, name):
        self.proc.stdin.write(name + '\n')
        self.proc.stdin.flush()
        return self.line()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.proc.stdin.close()
        self.proc.wait()
        self._log.close()


class _Arms:
    """The arms' processes, servers and instance directories, kept until
    ``stack`` closes."""

    def __init__(self, env, glance, image, stack):
        self.env, self.image = env, image
        self.root_gb = env.root_gb
        self.nova_root = os.path.join(env.workdir, 'cases', 'peer-nova')
        shutil.rmtree(self.nova_root, ignore_errors=True)
        self.nova_instances = os.path.join(self.nova_root, 'instances')
        os.makedirs(self.nova_root)
        self.states = {arm: env.state(name) for arm, name in (
            ('imagepipe in-process', 'peer-inproc'),
            ('imagepipe run', 'peer-run'))}
        glance_conf = f'[glance]\napi_servers = {glance.url}\n'
        for st in self.states.values():
            with open(st.conf, 'a') as f:
                f.write(glance_conf)
        python, self.venv_seconds = nova_venv.python(env.workdir, _log)
        self.nova = stack.enter_context(_Peer(
            [python, os.path.join(HERE, 'nova_peer_driver.py'),
             '--instances-path', self.nova_instances,
             '--api-server', glance.url, '--image', image,
             '--root-gb', str(self.root_gb)],
            os.path.join(self.nova_root, 'driver.log')))
        self.versions = self.nova.line()
        st = self.states['imagepipe in-process']
        self.inproc = stack.enter_context(_Peer(
            [env.python, '-m', 'benchmarks.peer_inproc', '--conf', st.conf,
             '--release', RELEASE, '--image', image,
             '--root-gb', str(self.root_gb)],
            os.path.join(st.root, 'inproc.log'), cwd=os.path.dirname(HERE)))
        board_url, db_url = stack.enter_context(
            fleet_env.started_servers())
        self.host = fleet_env.Host(env, 'peer', RELEASE, board_url, db_url,
                                   more=glance_conf)
        stack.callback(self.host.close)
        self.host.start()
        self.states[CONDUCTOR] = self.host.st
        #: instance -> (seconds to post, seconds in the steps), conductor's
        self.parts = {}

    def clear(self, arm):
        if arm == 'Nova in-process':
            shutil.rmtree(self.nova_instances, ignore_errors=True)
        else:
            self.states[arm].clear()

    def boot(self, arm, name):
        """Seconds the boot took; its disk and base checked."""
        if arm == 'Nova in-process':
            got = self.nova.boot(name)
            took, disk, base = got['seconds'], got['disk'], got['base']
        else:
            st = self.states[arm]
            if arm == 'imagepipe in-process':
                took = self.inproc.boot(name)['seconds']
            elif arm == CONDUCTOR:
                took, post, steps = fleet_env.boot(
                    self.host, self.image, [name], self.root_gb)
                self.parts[name] = (post, steps[0])
            else:
                took, _ = harness.timed(st.run(RELEASE, self.image, name,
                                               self.root_gb))
            disk = os.path.join(st.instances, name, 'disk')
            base = st.base(self.image)
        check_disk(arm, disk, base, self.root_gb,
                   self.env.facts['virtual_size'])
        return took


def _log(*args):
    print(*args, file=sys.stderr, flush=True)


def _table(title, times, fmt, pairs):
    table = Table(title, ['arm', 'median', 'min', 'max', 'x Nova'])
    nova = times[ARMS[0]]
    for arm in ARMS:
        med, lo, hi = spread(times[arm])
        ratio = spread([x / y for x, y in zip(times[arm], nova)])[0]
        table.add(arm, fmt(med), fmt(lo), fmt(hi), fmt_x(ratio))
    table.notes.append(f'{pairs}; "x Nova" is the median of the ratios of '
                       'boots made side by side.')
    return table


def _conductor_note(table, arms, times, names):
    """Where the conductor arm's boots ``names`` (in the order of its
    ``times``) spent their time."""
    post = [arms.parts[n][0] for n in names]
    steps = [arms.parts[n][1] for n in names]
    outside = [t - p - s for t, p, s in zip(times[CONDUCTOR], post, steps)]
    table.notes.append(
        f'{CONDUCTOR}, median ms: building, storing and posting the run '
        f'{fmt_ms(spread(post)[0])}; its steps {fmt_ms(spread(steps)[0])}; '
        'outside the steps and the post (claim, load, saves, consume) '
        f'{fmt_ms(spread(outside)[0])}.')
    return {'post': post, 'steps': steps, 'outside': outside}


def nova_peer(env, number):
    """Nova 33's own image code in one process, against imagepipe."""
    res = harness.Result(number, "Nova's own image code as a contender")
    path = env.image()
    warm_n = 1 if env.quick else WARM
    cold = {arm: [] for arm in ARMS}
    warm = {arm: [] for arm in ARMS}
    first = {}
    with contextlib.ExitStack() as stack:
        glance = stack.enter_context(fake_glance.FakeGlance())
        image = glance.add(path, 'qcow2', env.facts['virtual_size'])['id']
        arms = _Arms(env, glance, image, stack)
        for r in range(env.pairs + 1):
            for arm in ARMS:
                arms.clear(arm)
                env.settle(path)
                before = glance.downloads[image]
                took = arms.boot(arm, f'c{r}')
                if glance.downloads[image] != before + 1:
                    raise harness.Failed(f'{arm}: not one download')
                if r:
                    cold[arm].append(took)
                else:
                    first[arm] = took
            for k in range(warm_n):
                for arm in ARMS:
                    env.settle()
                    took = arms.boot(arm, f'w{r}-{k}')
                    if r:
                        warm[arm].append(took)
        if glance.downloads[image] != len(ARMS) * (env.pairs + 1):
            raise harness.Failed('a warm boot downloaded the image')
    cold_t = _table(f'Case {number}: cold boot, {RELEASE} defaults '
                    '(seconds)', cold, fmt_s, f'{env.pairs} rounds')
    warm_t = _table(f'Case {number}: warm boot on the cached base (ms)',
                    warm, fmt_ms,
                    f'{len(warm[ARMS[0]])} boots ({warm_n} a round)')
    built = ('reused' if arms.venv_seconds is None
             else f'made in {arms.venv_seconds:.0f} s')
    cold_t.notes.append(
        'Nova: ' + ', '.join(f'{k} {v}' for k, v in arms.versions.items())
        + f" (pip install '{nova_venv.SPEC}', venv {built}); first cold "
        'boot of each long-lived arm, untimed: ' + ', '.join(
            f'{arm} {fmt_s(first[arm])} s' for arm in ARMS
            if arm != 'imagepipe run') + '.')
    res.tables += [cold_t, warm_t]
    rounds = range(1, env.pairs + 1)
    parts = {kind: _conductor_note(table, arms, times, names)
             for kind, table, times, names in (
                 ('cold', cold_t, cold, [f'c{r}' for r in rounds]),
                 ('warm', warm_t, warm, [f'w{r}-{k}' for r in rounds
                                         for k in range(warm_n)]))}
    for kind, times in (('cold', cold), ('warm', warm)):
        for arm in CONTENDERS:
            ratio = spread([x / y for x, y in zip(times[arm],
                                                  times[ARMS[0]])])[0]
            res.targets.append(Target(
                f'{kind} boot: {arm} / Nova 33 in-process', '<= 1.00',
                f'{ratio:.2f}', ratio <= 1.0))
    res.data = {'cold': cold, 'warm': warm, 'first': first,
                'versions': arms.versions, 'venv_seconds': arms.venv_seconds,
                'conductor_parts': parts}
    return res
