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
    engine = engines.load(flow)
    engine.compile()
    return engine.compilation.execution_graph.export_to_dot()


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
