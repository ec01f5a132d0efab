"""Case 9: boots through one host's conductor (and three hosts'), against
the bare commands Nova ran (benchmarks/nova/grizzly.sh) in the same run.

A is a boot as a fleet runs it: this process, a warm producer, builds and
stores the run and posts its job as ``imagepipe boot`` does; the conductor
of the host (``imagepipe conductor``, a subprocess started once, whose
imports and connections are paid before the first boot) runs it; A ends
when the job is gone from the board (consumed once the run finished), and
the run must then be SUCCESS in the shared run database (PostgreSQL). The
board is a real redis-server. A and B alternate; a ratio or difference is
the median of the per-pair values.
"""

import contextlib
import os
import time

from benchmarks import fleet_env
from benchmarks import harness
from benchmarks.harness import Table
from benchmarks.harness import Target
from benchmarks.harness import fmt_ms
from benchmarks.harness import fmt_s
from benchmarks.harness import fmt_x
from benchmarks.harness import spread

RELEASE = 'grizzly'
N = 8
HOSTS = 3


def _row(label, values, fmt=fmt_s):
    med, lo, hi = spread(values)
    return [label, fmt(med), fmt(lo), fmt(hi)]


def _downloads(env):
    """GETs since the last reset; resets."""
    gets = len(env.server.gets())
    env.server.reset()
    return gets


def _nova(env, host, instance):
    took, _ = harness.timed(host.st.nova(RELEASE, env.url(), instance,
                                         env.root_gb))
    return took


def _warm(env, host, number, res):
    """Boots on the cached base: post-to-done against grizzly.sh."""
    url = env.url()
    host.st.clear()
    env.settle(env.image())
    fleet_env.boot(host, url, ['seed'], env.root_gb)
    count = 5 if env.quick else 20
    a, b, post, outside = [], [], [], []
    for i in range(count):
        env.settle()
        wall, posting, steps = fleet_env.boot(host, url, [f'wa{i}'],
                                              env.root_gb)
        a.append(wall)
        post.append(posting)
        outside.append(wall - posting - steps[0])
        env.settle()
        b.append(_nova(env, host, f'wb{i}'))
    diff = [x - y for x, y in zip(a, b)]
    table = Table(f'Case {number}: warm boot through the conductor, '
                  f'{count} pairs (ms per boot)', ['', 'median', 'min', 'max'])
    table.rows += [
        _row('A: post to done', a, fmt_ms),
        _row('B: grizzly.sh, base cached', b, fmt_ms),
        _row('A - B', diff, fmt_ms),
        _row('  A: build, store and post the run', post, fmt_ms),
        _row('  A: outside the steps and the post (claim, load, saves, '
             'consume)', outside, fmt_ms)]
    res.tables.append(table)
    med = spread(diff)[0]
    res.targets.append(Target(
        'warm boot through one conductor: post-to-done - bare commands',
        '<= 50 ms', f'{med * 1000:.1f} ms', med <= 0.050))
    res.data['warm'] = {'A': a, 'B': b, 'post': post, 'outside': outside}


def _cold(env, host, number, res):
    """Nothing cached: post-to-done against grizzly.sh, one download each."""
    url, image = env.url(), env.image()
    a, b = [], []
    rounds = env.pairs + (0 if env.quick else 1)
    for i in range(rounds):
        host.st.clear()
        env.settle(image)
        env.server.reset()
        wall, _, _ = fleet_env.boot(host, url, [f'ca{i}'], env.root_gb)
        if _downloads(env) != 1:
            raise harness.Failed('a cold boot through the conductor did '
                                 'not download once')
        host.st.clear()
        env.settle(image)
        took = _nova(env, host, f'cb{i}')
        env.server.reset()
        if env.quick or i:               # the first round warms up
            a.append(wall)
            b.append(took)
    ratio = [x / y for x, y in zip(a, b)]
    table = Table(f'Case {number}: cold boot through the conductor '
                  f'({RELEASE}, seconds)', ['', 'median', 'min', 'max'])
    table.rows += [_row('A: post to done', a), _row('B: grizzly.sh', b),
                   _row('A/B', ratio, fmt_x)]
    res.tables.append(table)
    med = spread(ratio)[0]
    res.targets.append(Target(
        'cold boot through one conductor: A/B', '<= 1.10', f'{med:.2f}',
        med <= 1.10))
    res.data['cold'] = {'A': a, 'B': b}


def _concurrent(env, host, number, res):
    """N boots of one uncached image posted at once, against one."""
    url, image = env.url(), env.image()
    one, many, gets = [], [], set()
    for r in range(env.pairs):
        for arm, count in (('one', 1), ('many', N)):
            host.st.clear()
            env.settle(image)
            env.server.reset()
            wall, _, _ = fleet_env.boot(
                host, url, [f'n{count}-{r}-{k}' for k in range(count)],
                env.root_gb)
            (one if arm == 'one' else many).append(wall)
            got = _downloads(env)
            if arm == 'many':
                gets.add(got)
    rel = [x / y for x, y in zip(many, one)]
    table = Table(f'Case {number}: {N} cold boots of one image posted at '
                  f'once to one host ({env.pairs} rounds, seconds)',
                  ['', 'median', 'min', 'max'])
    table.rows += [_row('one boot', one), _row(f'{N} boots', many),
                   _row(f'{N} boots / one', rel, fmt_x)]
    table.notes.append('downloads of the image per round of '
                       f'{N} boots: ' + '/'.join(map(str, sorted(gets))))
    res.tables.append(table)
    med = spread(rel)[0]
    res.targets.append(Target(
        f'{N} boots posted at once to one host: downloads', 'exactly 1',
        '/'.join(map(str, sorted(gets))), gets == {1}))
    res.targets.append(Target(
        f'{N} boots posted at once to one host: wall / one boot', '<= 1.3',
        f'{med:.2f}', med <= 1.3))
    res.data['concurrent'] = {'one': one, 'many': many,
                              'downloads': sorted(gets)}


def _hosts(env, hosts, number, res):
    """N boots on each of the hosts at once: one download per host."""
    url, image = env.url(), env.image()
    walls, gets, ok = [], set(), True
    for r in range(1 if env.quick else 2):
        for host in hosts:
            host.st.clear()
        env.settle(image)
        env.server.reset()
        start = time.perf_counter()
        posted = [(host, host.post(url, f'h{r}-{k}', env.root_gb))
                  for k in range(N) for host in hosts]
        for host in hosts:
            host.wait_gone([job for h, (_, job) in posted if h is host])
        walls.append(time.perf_counter() - start)
        for host, (run_id, _) in posted:
            host.outcome(run_id)
        gets.add(_downloads(env))
        ok &= all(os.path.exists(h.st.base(url)) for h in hosts)
    # every host made its own base, so len(hosts) GETs is one per host
    one_each = ok and gets == {len(hosts)}
    table = Table(f'Case {number}: {len(hosts)} hosts x {N} boots of one '
                  'image, posted at once', ['', 'median', 'min', 'max'])
    table.rows.append(_row('wall (s)', walls))
    table.notes.append('downloads per round (all hosts): '
                       + '/'.join(map(str, sorted(gets))))
    res.tables.append(table)
    res.targets.append(Target(
        f'{len(hosts)} hosts x {N} boots: downloads', 'one per host',
        '/'.join(map(str, sorted(gets))) + f' for {len(hosts)} hosts',
        one_each))
    res.data['hosts'] = {'wall': walls, 'downloads': sorted(gets)}


def through_conductor(env, number):
    """Boots through one conductor (and three), post to done."""
    res = harness.Result(number, 'boots through one conductor')
    with contextlib.ExitStack() as stack:
        board_url, db_url = stack.enter_context(fleet_env.started_servers())
        hosts = []
        for k in range(HOSTS):
            hosts.append(fleet_env.Host(env, f'bench-{k}', RELEASE,
                                        board_url, db_url))
            stack.callback(hosts[-1].close)
        hosts[0].start()
        _warm(env, hosts[0], number, res)
        _cold(env, hosts[0], number, res)
        _concurrent(env, hosts[0], number, res)
        for host in hosts[1:]:
            host.start()
        _hosts(env, hosts, number, res)
    return res
