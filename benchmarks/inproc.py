"""Measurements inside one warm Python process, through imagepipe's runner.

Run by benchmarks.run as ``python -m benchmarks.inproc COMMAND ...``; prints
one JSON object. A separate process keeps the harness (and its HTTP server
thread) out of the numbers and starts every measurement from the same
imports.

``engine``     flows of N no-op tasks through persistence.open_backend,
               RunStore.create and driver.drive (and driver.start, the path of
               ``imagepipe run``), against the same flows run by taskflow
               with no persistence
``warm``       release flows on an already cached base, with the time spent
               in external commands measured apart
``footprint``  one cold boot, with the page cache held by every file of
               the image cache and instance after each step
"""

import argparse
import json
import os
import sys
import time

from taskflow import engines
from taskflow import states
from taskflow import task
from taskflow.listeners import base as listener_base
from taskflow.patterns import linear_flow

from benchmarks import harness
from imagepipe import flows
from imagepipe import tools
from imagepipe.conf import loader
from imagepipe.conf import settings as conf_settings
from imagepipe.runner import driver
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store


class Noop(task.Task):
    def execute(self):
        return None


def noop_flow(name, steps):
    flow = linear_flow.Flow(name)
    flow.add(*(Noop(f'step-{i}') for i in range(steps)))
    return flow


def _noop_kwargs(root, instance):
    return {'release': 'noop', 'settings': {'instances_path': root},
            'request': {'image': 'noop', 'instance': instance}}


def engine(args):
    """Per-run cost of N no-op steps: persisted (create+drive, start) vs
    taskflow alone."""
    os.makedirs(args.dir, exist_ok=True)
    lock_dir = os.path.join(args.dir, 'locks')
    db = os.path.join(args.dir, 'runs.sqlite')
    if os.path.exists(db):
        os.unlink(db)
    t0 = time.perf_counter()
    store = run_store.RunStore(persistence.open_backend(f'sqlite:///{db}'))
    opened = time.perf_counter() - t0
    count = [0]

    def drive(steps):
        count[0] += 1
        flow = noop_flow(f'noop-{steps}', steps)
        kwargs = _noop_kwargs(args.dir, f'noop-{count[0]}')
        start = time.perf_counter()
        fd = store.create(kwargs, flow)
        created = time.perf_counter()
        state, _, error = driver.drive(store, fd, flow, lock_dir)
        done = time.perf_counter()
        if state != states.SUCCESS:
            raise harness.Failed(f'no-op run ended {state}: {error}')
        return done - start, created - start

    def start(steps):
        count[0] += 1
        flow = noop_flow(f'noop-{steps}', steps)
        kwargs = _noop_kwargs(args.dir, f'noop-{count[0]}')
        t = time.perf_counter()
        _, state, _, error = driver.start(store, kwargs, flow, lock_dir)
        took = time.perf_counter() - t
        if state != states.SUCCESS:
            raise harness.Failed(f'no-op run ended {state}: {error}')
        return took

    def bare(steps):
        flow = noop_flow(f'noop-{steps}', steps)
        t = time.perf_counter()
        engines.load(flow, engine='serial').run()
        return time.perf_counter() - t

    for _ in range(args.warmup):
        for steps in args.steps:
            drive(steps)
            bare(steps)
    out = {'open_backend': opened, 'steps': {}}
    for steps in args.steps:
        out['steps'][steps] = {'drive': [], 'create': [], 'bare': [],
                               'start': []}
    stored_before = count[0]
    for _ in range(args.runs):
        for steps in args.steps:
            total, created = drive(steps)
            row = out['steps'][steps]
            row['drive'].append(total)
            row['create'].append(created)
            row['bare'].append(bare(steps))
            row['start'].append(start(steps))
    out['stored_runs'] = {'before': stored_before, 'after': count[0]}
    t = time.perf_counter()
    store.all()
    out['list_all_runs'] = time.perf_counter() - t
    t = time.perf_counter()
    store.of_instance(os.path.join(args.dir, 'noop-new'))
    out['runs_of_instance'] = time.perf_counter() - t
    return out


class _ToolClock:
    """Wraps tools._execute (every tools.run) to time the commands."""

    def __init__(self):
        self.calls = []
        self._execute = tools._execute

    def __enter__(self):
        def execute(argv):
            cmd = argv
            suffix = ''
            while os.path.basename(cmd[0]) in ('setpriv', 'prlimit'):
                if os.path.basename(cmd[0]) == 'prlimit':
                    suffix = ' (prlimit)'
                cmd = cmd[cmd.index('--') + 1:]
            name = (' '.join(cmd[:2]) if cmd[0] == 'qemu-img'
                    else cmd[0]) + suffix
            start = time.perf_counter()
            try:
                return self._execute(argv)
            finally:
                self.calls.append((name, time.perf_counter() - start))
        tools._execute = execute
        return self

    def __exit__(self, *exc_info):
        tools._execute = self._execute


def _release_kwargs(args, instance):
    settings = conf_settings.snapshot(loader.load([args.conf],
                                                  release=args.release))
    return {'release': args.release, 'settings': settings,
            'request': {'image': args.image, 'instance': instance,
                        'root_gb': args.root_gb, 'ephemeral_gb': 0,
                        'swap_mb': 0}}


def _store(kwargs):
    return run_store.RunStore(persistence.open_backend(
        kwargs['settings']['connection']))


def warm(args):
    """Instances on a cached base: total and external-command time each."""
    kwargs = _release_kwargs(args, 'unused')
    store = _store(kwargs)
    out = []
    for i in range(args.count + 1):   # the first one warms the process up
        kwargs['request']['instance'] = f'{args.prefix}{i}'
        with _ToolClock() as clock:
            start = time.perf_counter()
            flow = flows.factory(**kwargs)
            _, state, _, error = driver.start(store, kwargs, flow,
                                            args.lock_dir)
            took = time.perf_counter() - start
        if state != states.SUCCESS:
            raise harness.Failed(f'warm run ended {state}: {error}')
        out.append({'total': took,
                    'tools': sum(t for _, t in clock.calls),
                    'calls': clock.calls})
    return {'first': out[0], 'instances': out[1:]}


class _CacheWatch(listener_base.Listener):
    """After each step: page cache held by each file of the run."""

    def __init__(self, engine, instances, seen):
        super().__init__(engine, task_listen_for=(states.SUCCESS,))
        self.instances, self.seen = instances, seen

    def _task_receiver(self, state, details):
        files = harness.files_under(self.instances)
        resident = harness.cached(files)
        self.seen.append({
            'step': details['task_name'],
            'files': {os.path.relpath(f, self.instances): {
                'cached': resident.get(f, 0),
                'allocated': harness.allocated(f)}
                for f in files if os.path.exists(f)}})


def footprint(args):
    """One run, with the page cache of its files after every step."""
    kwargs = _release_kwargs(args, args.instance)
    store = _store(kwargs)
    instances = kwargs['settings']['instances_path']
    seen = []
    flow = flows.factory(**kwargs)
    _, state, _, error = driver.start(
        store, kwargs, flow, args.lock_dir,
        listeners=[lambda e: _CacheWatch(e, instances, seen)])
    if state != states.SUCCESS:
        raise harness.Failed(f'footprint run ended {state}: {error}')
    return {'steps': seen}


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.inproc')
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('engine')
    p.add_argument('--dir', required=True)
    p.add_argument('--steps', type=int, nargs='+', default=[8, 32])
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    for name in ('warm', 'footprint'):
        p = sub.add_parser(name)
        p.add_argument('--conf', required=True)
        p.add_argument('--release', required=True)
        p.add_argument('--image', required=True)
        p.add_argument('--root-gb', type=int, required=True)
        p.add_argument('--lock-dir', required=True)
    sub.choices['warm'].add_argument('--count', type=int, default=20)
    sub.choices['warm'].add_argument('--prefix', default='warm-inproc-')
    sub.choices['footprint'].add_argument('--instance', required=True)
    args = parser.parse_args(argv)
    result = {'engine': engine, 'warm': warm,
              'footprint': footprint}[args.command](args)
    json.dump(result, sys.stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
