"""``imagepipe demo``: the default flow of every release, on a built-in image.

Needs no network and no configuration; see :mod:`imagepipe.demo`.
"""

import os
import shlex
import shutil
import sys
import tempfile
import time

from taskflow import states

from imagepipe import demo
from imagepipe import exception
from imagepipe import flows
from imagepipe.cmd import output
from imagepipe.flows import paths as flow_paths
from imagepipe.runner import reverts

GiB = 1024 ** 3


def _size(n):
    return f'{n / GiB:.2f} GiB' if n >= GiB else f'{n / 2**20:.1f} MiB'


def _shorten(kwargs):
    """Paths as the article writes them: $B for the cache, $I, $hex."""
    settings = kwargs['settings']
    base = os.path.join(settings['instances_path'],
                        settings['image_cache_subdirectory_name'])
    hex_name = flow_paths.image_hex(kwargs['request']['image'])
    pairs = [(base + os.sep, '$B/'), (settings['instances_path'] + os.sep,
                                      '$I/'), (hex_name, '$hex')]

    def shorten(text):
        for long, short in pairs:
            text = text.replace(long, short)
        return text
    return shorten


def _commands(step):
    command = step['command']
    if not command:
        return '(in-process)'
    if not isinstance(command[0], list):
        command = [command]
    return ' ; '.join(shlex.join(c) for c in command)


def _print_release(kwargs, flow, fd, took):
    details = {ad.name: ad for ad in fd}
    results = {ad.name: ad.results for ad in fd}
    shorten = _shorten(kwargs)
    rows = []
    for atom in flow:
        ad = details.get(atom.name)
        rows.append({
            'step': atom.name,
            'command': shorten(_commands(atom.describe(results))),
            'time': f"{ad.meta.get('duration', 0):.2f}s" if ad else '-',
        })
    tag = flows.get(kwargs['release']).nova_tag
    print(f"\n== {kwargs['release']} (Nova {tag}): {fd.state} in "
          f'{took:.1f}s')
    output.table(rows, [('step', 'STEP'), ('time', 'TIME'),
                        ('command', 'COMMAND')])


def _print_comparison(outcomes):
    def describe(facts):
        if not facts:
            return '-'
        return (f"{facts['format']} {_size(facts['virtual_size'])}, "
                f"{_size(facts['allocated'])} on disk")
    rows = [{
        'release': kwargs['release'],
        'base': describe(o['base']),
        'resized base': describe(o['resized_base']),
        'instance disk': describe(o['disk']),
        'backing': shorten(o['disk']['backing'] or '-'),
        'fs grown': 'yes' if o['fs_grown'] else 'no',
    } for kwargs, o in outcomes for shorten in [_shorten(kwargs)]]
    print('\n== what each release left behind')
    output.table(rows, [(k, k.upper()) for k in (
        'release', 'base', 'resized base', 'instance disk', 'backing',
        'fs grown')])


def run(args, ctx):
    if args.keep:
        workdir = os.path.abspath(args.keep)
        if os.path.exists(workdir) and os.listdir(workdir):
            raise exception.ConfigError(
                f'--keep {args.keep}: the directory is not empty')
        os.makedirs(workdir, exist_ok=True)
    else:
        workdir = tempfile.mkdtemp(prefix='imagepipe-demo-')
    try:
        return _demo(workdir, args.format)
    finally:
        if args.keep:
            print(f'results kept in {workdir}', file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _demo(workdir, fmt):
    image = demo.build_image(workdir)
    outcomes = []
    with demo.serve(os.path.dirname(image)) as url:
        image_url = f'{url}/{os.path.basename(image)}'
        if fmt == 'table':
            print(f'demo image: {image_url} (qcow2 of a {demo.IMAGE_MB} MiB '
                  f'ext4 disk), flavor root disk {demo.ROOT_GB} GiB')
        for release in flows.registered():
            start = time.monotonic()
            kwargs, flow, fd = demo.run_release(
                workdir, release, image_url)
            if fd.state != states.SUCCESS:
                _, error = reverts.failure_of(fd)
                raise exception.RunError(
                    f'demo run of {release} ended {fd.state}: {error}')
            if fmt == 'table':
                _print_release(kwargs, flow, fd, time.monotonic() - start)
            outcomes.append((kwargs, demo.outcome(kwargs, fd)))
    if fmt == 'json':
        output.as_json([o for _, o in outcomes])
    else:
        _print_comparison(outcomes)
    return 0
