"""``imagepipe releases`` and ``imagepipe plan``: what would run, not run.

The plan is drawn from the very flow object ``run`` executes (each task
describes itself), so the two cannot drift. Nothing touches the disk and no
external tool runs. What the release would get wrong with this configuration
(e.g. an unbootable disk) goes to stderr as warning lines, whatever the
format, so the JSON on stdout stays a list of steps.
"""

import shlex
import sys

from taskflow import engines
from taskflow import task

from imagepipe import flows
from imagepipe.cmd import output
from imagepipe.cmd import request as request_args
from imagepipe.conf import settings as conf_settings


def build_flow(args, ctx):
    """The flow for the command's request, with its factory arguments."""
    kwargs = {'release': ctx.rconf.release,
              'settings': conf_settings.snapshot(ctx.rconf),
              'request': request_args.from_args(args)}
    return flows.factory(**kwargs), kwargs


def describe(flow):
    """The steps of ``flow`` in execution order."""
    return [atom.describe() for atom in flow]


def dot(flow):
    """The flow as a graphviz picture: a box per step (name, Nova function,
    tool) in taskflow's execution order; the steps under one of Nova's locks
    inside a dashed box whose caption sits beside its first step (so no
    arrow crosses it) and says what the lock guards. As in Nova's
    Image.cache(), the first lock a disk's steps take is its fetch lock (the
    base made in the cache) and a later one its copy lock (the instance's
    disk made from the base). A step's node is taskflow's name for it,
    ``"name==version"``."""
    steps = {s['name']: s for s in describe(flow)}
    out = [f'strict digraph "{flow.name}" {{',
           'node [shape=box, style=rounded, fontname="Helvetica", '
           'fontsize=10]; edge [weight=10];']
    first_lock = set()
    for i, (lock, atoms) in enumerate(_sections(flow)):
        if lock:
            disk = atoms[0].name.split('-')[0]
            role = 'copy' if disk in first_lock else 'fetch'
            first_lock.add(disk)
            out += [f'subgraph cluster_{i} {{ style=dashed; label="";',
                    f'"lock {i}" [shape=plaintext, fontsize=9, label='
                    f'"{role} lock:\\n{_escaped(lock)}"];',
                    f'{{ rank=same; "lock {i}"; {atoms[0]}; }}',
                    f'"lock {i}" -> {atoms[0]} [style=invis];']
        for atom in atoms:
            step = steps[atom.name]
            command = step['command'] or []
            if command and isinstance(command[0], list):
                command = command[-1]
            tool = command[0] if command else 'in-process'
            out.append(f'{atom} [group=steps, label="{atom.name}\\n'
                       f'{step["source"]}\\n{tool}"];')
        if lock:
            out.append('}')
    out += [f'{a} -> {b};' for a, b in _task_edges(flow)]
    out.append('}')
    return '\n'.join(out)


def _sections(flow):
    """(lock name or None, steps) of each run of steps taken under one hold
    of a lock (or under none): a section ends with its step marked last,
    so a lock released and taken again makes two."""
    sections, ended = [], True
    for atom in flow:
        lock = atom.inject.get('lock') if atom.inject else None
        name = lock['name'] if lock else None
        if ended or sections[-1][0] != name:
            sections.append((name, []))
        sections[-1][1].append(atom)
        ended = bool(lock and lock.get('last'))
    return sections


def _escaped(text):
    return text.replace('\\', '\\\\').replace('"', '\\"')


def _task_edges(flow):
    """Task-to-task edges of taskflow's execution graph of ``flow``."""
    engine = engines.load(flow)
    engine.compile()
    graph = engine.compilation.execution_graph
    tasks = [n for n in graph.nodes if isinstance(n, task.Task)]

    def next_tasks(node, seen=()):
        for succ in graph.successors(node):
            if succ in tasks:
                yield succ
            elif succ not in seen:
                yield from next_tasks(succ, seen + (succ,))
    return [(a, b) for a in tasks for b in dict.fromkeys(next_tasks(a))]


def _commands(command):
    if not command:
        return []
    if isinstance(command[0], list):
        return [shlex.join(c) for c in command]
    return [shlex.join(command)]


def print_plan(steps, title):
    print(title)
    for i, step in enumerate(steps, 1):
        lock = f"  [lock {step['lock']}]" if step['lock'] else ''
        print(f"\n{i:2}. {step['name']}  ({step['source']}){lock}")
        for line in _commands(step['command']) or ['(in-process step)']:
            print(f'      $ {line}')
        for note in step['notes']:
            print(f'      - {note}')


def warn(lines):
    for line in lines:
        print(f'imagepipe: warning: {line}', file=sys.stderr)


def plan(args, ctx):
    flow, kwargs = build_flow(args, ctx)
    warn(flows.warnings(kwargs['release'], kwargs['settings']))
    warn(ctx.rconf.ignored())
    if args.format == 'dot':
        print(dot(flow))
        return 0
    steps = describe(flow)
    if args.format == 'json':
        output.as_json(steps)
    else:
        s = kwargs['settings']
        print_plan(steps, f"{kwargs['release']}: images type "
                          f"{s['images_type_effective']}, force_raw_images="
                          f"{s['force_raw_images']}, image "
                          f"{kwargs['request']['image']}")
    return 0
