"""Documentation generated from the code, at build time.

Directives:

``.. imagepipe-options::``
    every option across the releases (names, releases, defaults, meaning)
``.. imagepipe-release:: NAME``
    a release's flow graph, its plan for each configuration, and what changed
    since the previous release
``.. imagepipe-deviations::``
    every Nova bug imagepipe deliberately does not reproduce
``.. imagepipe-cli::``
    every command with its arguments (:mod:`imagepipe_cli_docs`)

Values are written the way a reader meets them (:mod:`imagepipe_values`):
commands as command lines, booleans as yes/no, paths shortened to ``$B``,
``$I`` and ``$hex``; never as Python reprs.
"""

import itertools

from imagepipe_cli_docs import Cli
from imagepipe_values import DOC_REQUEST
from imagepipe_values import DOC_SETTINGS
from imagepipe_values import Generated
from imagepipe_values import command_line
from imagepipe_values import conf_value
from imagepipe_values import short
from imagepipe_values import table
from imagepipe_values import trait_value

from imagepipe import flows
from imagepipe.cmd import plan as plan_cmd
from imagepipe.conf import options
from imagepipe.conf import releases as conf_releases
from imagepipe.flows import deviations


def _span(first, last):
    return first if first == last else f'{first} – {last}'


def _names(opt):
    """Each spelling of ``opt`` with the releases that read it, one
    paragraph each."""
    parts, newest = [], conf_releases.newest()
    for s in opt.spellings:
        span = _span(s.since, s.until or newest)
        if s.accepted_until:
            span += f', deprecated alias in {s.accepted_until}'
        parts.append(f'``{s.label}`` ({span})')
    return parts


def _defaults(opt):
    """The default, with the releases of each when it changed."""
    if opt.sample_default:
        return f'``{opt.sample_default}``'
    spans = []
    read = [r for r in conf_releases.RELEASES if opt.spelling_in(r)]
    for value, group in itertools.groupby(
            read, lambda r: opt.attribute('default', r)):
        group = list(group)
        text = conf_value(value)
        spans.append((text if value is None else f'``{text}``',
                      _span(group[0], group[-1])))
    if len(spans) == 1:
        return spans[0][0]
    return '; '.join(f'{value} ({span})' for value, span in spans)


class Options(Generated):
    def lines(self):
        rows = []
        for opt in options.OPTIONS:
            read = [r for r in conf_releases.RELEASES if opt.spelling_in(r)]
            rows.append([[f'``{opt.key}``', opt.help],
                         _span(read[0], read[-1]), _names(opt),
                         _defaults(opt)])
        yield from table(['option', 'read by', 'names (releases)', 'default'],
                         rows, [28, 15, 37, 20])


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
        types = [('use_cow_images = true',
                  {'images_type_effective': 'qcow2'}),
                 ('use_cow_images = false',
                  {'images_type_effective': 'raw', 'use_cow_images': False})]
    for (title, over), force_raw in itertools.product(types, (True, False)):
        yield (f'{title}, force_raw_images = {conf_value(force_raw)}',
               {**over, 'force_raw_images': force_raw})
    if t.preallocation:
        yield ('qcow2, preallocate_images = space',
               {'images_type_effective': 'qcow2',
                'preallocate_images': 'space'})
    if t.overlay_fs_resize == 'nbd-option':
        yield ('qcow2, resize_fs_using_block_device = true',
               {'images_type_effective': 'qcow2',
                'resize_fs_using_block_device': True})


def _plan_rows(flow):
    rows = []
    for step in plan_cmd.describe(flow):
        command = step['command']
        if not command:
            commands = ['(in-process)']
        else:
            argvs = command if isinstance(command[0], list) else [command]
            commands = [f'``{short(command_line(c))}``' for c in argvs]
        notes = [short(n) for n in step['notes']]
        rows.append([[f'``{step["name"]}``', f'*{step["source"]}*'],
                     commands, notes])
    return rows


def _trait_changes(release):
    """What the release module changed (its ``dataclasses.replace`` of the
    release before), then the options that came and went."""
    previous = release.previous
    if previous is None:
        return ['The first release imagepipe models.']
    changes = [f'``{name}``: {trait_value(a, name)} → {trait_value(b, name)}'
               for name, a, b in release.changes()]
    before = {o.key for o in options.for_release(previous.name)}
    after = {o.key for o in options.for_release(release.name)}
    for key in sorted(after - before):
        changes.append(f'new option ``{key}``')
    for key in sorted(before - after):
        changes.append(f'option ``{key}`` gone')
    return changes or ['Nothing the flows depend on.']


class Release(Generated):
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
        yield f'   :alt: {name} default flow'
        yield ''
        for line in short(plan_cmd.dot(default)).splitlines():
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
            yield from table(['step', 'command', 'notes'],
                             _plan_rows(flow), [24, 40, 36])


class Deviations(Generated):
    def lines(self):
        rows = [[ref, short_text, text] for short_text, ref, text in
                deviations.DEVIATIONS.values()]
        yield from table(['reference', 'in short', 'what and why'], rows,
                         [18, 22, 60])


def setup(app):
    app.add_directive('imagepipe-options', Options)
    app.add_directive('imagepipe-release', Release)
    app.add_directive('imagepipe-deviations', Deviations)
    app.add_directive('imagepipe-cli', Cli)
    app.add_css_file('imagepipe.css')
    return {'parallel_read_safe': True}
