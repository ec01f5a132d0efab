"""Documentation generated from the code, at build time.

Directives:

``.. imagepipe-options::``
    every option across the releases (introduced, renamed, dropped, default)
``.. imagepipe-release:: NAME``
    a release's flow graph, its plan for each configuration, and what changed
    since the previous release
``.. imagepipe-deviations::``
    every Nova bug imagepipe deliberately does not reproduce
``.. imagepipe-cli::``
    the help of every command
"""

import argparse
import itertools
import shlex

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList
from taskflow import engines
from taskflow import task

from imagepipe import flows
from imagepipe.cmd import main as cmd_main
from imagepipe.cmd import plan as plan_cmd
from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import releases as conf_releases
from imagepipe.flows import deviations

DOC_SETTINGS = {
    'state_path': '/var/lib/nova',
    'instances_path': '/var/lib/nova/instances',
    'use_cow_images': True, 'force_raw_images': True,
    'images_type': 'default', 'images_volume_group': 'nova-vg',
    'sparse_logical_volumes': False, 'preallocate_images': 'none',
    'resize_fs_using_block_device': False,
    'image_cache_subdirectory_name': '_base', 'volume_clear': 'zero',
    'volume_clear_size': 0, 'disable_process_locking': False,
    'glance_endpoints': ['http://glance.example:9292'],
    'download_retries': 3,
}
DOC_REQUEST = {'image': 'f6a6c2a8-7d02-4c0b-9e2a-2d8c4d1a0b7e',
               'instance': 'instance-00000001', 'root_gb': 10,
               'ephemeral_gb': 0, 'swap_mb': 0}


class _Generated(Directive):
    """Emit reST lines produced by :meth:`lines`."""

    def run(self):
        lines = StringList(list(self.lines()), source='imagepipe_docs')
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(lines, self.content_offset, container,
                                match_titles=True)
        return container.children


def _table(header, rows, widths=None):
    yield '.. list-table::'
    yield '   :header-rows: 1'
    if widths:
        yield f'   :widths: {" ".join(map(str, widths))}'
    yield ''
    for row in [header] + rows:
        first = True
        for cell in row:
            text = str(cell).replace('\n', ' ') if cell not in (None, '') \
                else '-'
            yield f"   {'* -' if first else '  -'} {text}"
            first = False
    yield ''


class Options(_Generated):
    def lines(self):
        rows = []
        for opt in options.OPTIONS:
            names = '; '.join(
                f'``{s.label}`` {s.since}'
                + (f'-{s.until}' if s.until else '+')
                + (f' (alias in {s.accepted_until})' if s.accepted_until
                   else '')
                for s in opt.spellings)
            last = opt.spellings[-1]
            dropped = (last.accepted_until or last.until
                       if last.until else '')
            defaults = sorted({
                repr(opt.attribute('default', r)) for r in
                conf_releases.RELEASES if opt.spelling_in(r)})
            rows.append([f'``{opt.key}``', opt.introduced, names,
                         dropped, ', '.join(defaults),
                         opt.help])
        yield from _table(['option', 'introduced', 'names (releases)',
                           'last release', 'default', 'meaning'], rows,
                          [14, 8, 30, 8, 12, 28])
        own = [[f'``[imagepipe] {o.name}``', o.default, o.help]
               for o in loader.IMAGEPIPE_OPTS]
        yield '**imagepipe\'s own options** (every release):'
        yield ''
        yield from _table(['option', 'default', 'meaning'], own)


def _combinations(release):
    """Configurations worth a plan for ``release``: (title, overrides)."""
    t = release.traits
    if 'lvm' in t.backends:
        types = [('qcow2', {'images_type_effective': 'qcow2'}),
                 ('raw', {'images_type_effective': 'raw',
                          'use_cow_images': False}),
                 ('lvm', {'images_type_effective': 'lvm',
                          'images_type': 'lvm'})]
    else:
        types = [('use_cow_images=True', {'images_type_effective': 'qcow2'}),
                 ('use_cow_images=False', {'images_type_effective': 'raw',
                                           'use_cow_images': False})]
    for (title, over), force_raw in itertools.product(types, (True, False)):
        yield (f'{title}, force_raw_images={force_raw}',
               {**over, 'force_raw_images': force_raw})
    if t.preallocation:
        yield ('qcow2, preallocate_images=space',
               {'images_type_effective': 'qcow2',
                'preallocate_images': 'space'})
    if t.overlay_fs_resize == 'nbd-option':
        yield ('qcow2, resize_fs_using_block_device=True',
               {'images_type_effective': 'qcow2',
                'resize_fs_using_block_device': True})


def _plan_rows(flow):
    rows = []
    for step in plan_cmd.describe(flow):
        command = step['command']
        if command and isinstance(command[0], list):
            text = ' ; '.join(shlex.join(c) for c in command)
        else:
            text = shlex.join(command) if command else '(in-process)'
        text = (text.replace('/var/lib/nova/instances/_base/', '$B/')
                .replace('/var/lib/nova/instances/', '$I/'))
        rows.append([f'``{step["name"]}``', f'``{text}``',
                     step['source'], ' '.join(
                         f'{n}.' if not n.endswith('.') else n
                         for n in step['notes'])])
    return rows


def _picture(flow):
    """DOT of the flow: one box per step (name, Nova function, tool), the
    steps under one of Nova's locks drawn inside a box named after it."""
    steps = plan_cmd.describe(flow)
    out = ['digraph flow {', 'rankdir=TB; node [shape=box, style=rounded, '
           'fontname="Helvetica", fontsize=10];']
    for i, group in enumerate(itertools.groupby(steps, lambda s: s['lock'])):
        lock, members = group
        members = list(members)
        if lock:
            label = ('lock ' + lock.replace('/var/lib/nova/instances/_base/',
                                            '$B/'))[:60]
            out.append(f'subgraph cluster_{i} {{ label="{label}"; '
                       'style=dashed; fontsize=9;')
        for step in members:
            command = step['command']
            if command and isinstance(command[0], list):
                command = command[-1]
            tool = command[0] if command else 'in-process'
            out.append(f'"{step["name"]}" [label="{step["name"]}\\n'
                       f'{step["source"]}\\n{tool}"];')
        if lock:
            out.append('}')
    out += [f'"{a}" -> "{b}";' for a, b in _edges(flow)]
    out.append('}')
    return out


def _edges(flow):
    """Task-to-task edges of taskflow's execution graph of ``flow``."""
    engine = engines.load(flow)
    engine.compile()
    graph = engine.compilation.execution_graph
    tasks = {n for n in graph.nodes if isinstance(n, task.Task)}

    def next_tasks(node, seen=()):
        for succ in graph.successors(node):
            if succ in tasks:
                yield succ
            elif succ not in seen:
                yield from next_tasks(succ, seen + (succ,))
    return [(a.name, b.name) for a in tasks for b in set(next_tasks(a))]


def _trait_changes(release):
    """What the release module changed (its ``dataclasses.replace`` of the
    release before), then the options that came and went."""
    previous = release.previous
    if previous is None:
        return ['The first release imagepipe models.']
    changes = [f'``{name}``: {a!r} -> {b!r}'
               for name, a, b in release.changes()]
    before = {o.key for o in options.for_release(previous.name)}
    after = {o.key for o in options.for_release(release.name)}
    for key in sorted(after - before):
        changes.append(f'new option ``{key}``')
    for key in sorted(before - after):
        changes.append(f'option ``{key}`` gone')
    return changes or ['Nothing the flows depend on.']


class Release(_Generated):
    required_arguments = 1

    def lines(self):
        name = self.arguments[0]
        release = flows.get(name)
        previous = release.previous
        settings = {**DOC_SETTINGS, 'release': name,
                    'images_type_effective': 'qcow2'}
        default = flows.factory(release=name, settings=settings,
                                request=DOC_REQUEST)
        yield f'Nova tag **{release.nova_tag}** ({release.date}). ' \
              f'Options that shape the flow: ' \
              f'{", ".join(f"``{o}``" for o in release.options)}.'
        yield ''
        yield 'Default flow'
        yield '------------'
        yield ''
        yield '.. graphviz::'
        yield ''
        for line in _picture(default):
            yield f'   {line}'
        yield ''
        heading = f'Changes since {previous.name if previous else "Diablo"}'
        yield heading
        yield '-' * len(heading)
        yield ''
        for change in _trait_changes(release):
            yield f'* {change}'
        yield ''
        for title, over in _combinations(release):
            flow = flows.factory(release=name,
                                 settings={**settings, **over},
                                 request=DOC_REQUEST)
            yield title
            yield '-' * len(title)
            yield ''
            yield from _table(['step', 'command', 'Nova source', 'notes'],
                              _plan_rows(flow), [12, 40, 14, 34])


class Deviations(_Generated):
    def lines(self):
        rows = [[ref, short, text] for short, ref, text in
                deviations.DEVIATIONS.values()]
        yield from _table(['reference', 'in short', 'what and why'], rows,
                          [12, 20, 68])


class Cli(_Generated):
    def lines(self):
        parser = argparse.ArgumentParser(prog='imagepipe')
        commands = parser.add_subparsers(dest='command')
        cmd_main._add_parsers(commands)
        yield 'Global options (before the command): ``--config-file F`` ' \
              '(repeatable), ``--config-dir D``, ``--release R``, ' \
              '``--debug``.'
        yield ''
        for name, sub in commands.choices.items():
            yield f'``{name}``'
            yield '~' * (len(name) + 4)
            yield ''
            yield '.. code-block:: text'
            yield ''
            for line in sub.format_help().splitlines():
                yield f'   {line}'
            yield ''


def setup(app):
    app.add_directive('imagepipe-options', Options)
    app.add_directive('imagepipe-release', Release)
    app.add_directive('imagepipe-deviations', Deviations)
    app.add_directive('imagepipe-cli', Cli)
    return {'parallel_read_safe': True}
