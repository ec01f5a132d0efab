"""``.. imagepipe-cli::``: every command of :data:`imagepipe.cmd.commands.
COMMANDS`, its synopsis and a definition list of its arguments.

Read from the parsers the command line itself builds, so the page cannot
drift from ``imagepipe COMMAND --help``; written as reST (no preformatted
help text), so nothing is clipped on a narrow page.
"""

import argparse

from imagepipe_values import Generated

from imagepipe.cmd import commands


def _metavar(action):
    if action.metavar:
        return action.metavar
    if action.choices:
        return '{' + ','.join(action.choices) + '}'
    return action.dest.upper()


def _term(action):
    """``--image REF``, ``--all``, ``RUN``."""
    if not action.option_strings:
        return _metavar(action)
    names = ', '.join(action.option_strings)
    return names if action.nargs == 0 else f'{names} {_metavar(action)}'


def _synopsis(name, parser):
    parts = [f'imagepipe {name}']
    for action in _arguments(parser):
        term = _term(action)
        optional = (action.option_strings and not action.required) or \
            action.nargs == '?'
        parts.append(f'[{term}]' if optional else term)
    return ' '.join(parts)


def _meaning(action, exclusive):
    text = action.help or ''
    if '%' in text:
        text = text % {**vars(action), 'prog': 'imagepipe'}
    extra = []
    if action.choices and action.metavar:
        extra.append('one of ' + ', '.join(action.choices))
    if action.required:
        extra.append('required')
    others = [', '.join(o.option_strings) for o in exclusive.get(action, ())
              if o is not action]
    if others:
        extra.append('not with ' + ' or '.join(others))
    return text + (f' ({"; ".join(extra)})' if extra else '')


def _arguments(parser):
    return [a for a in parser._actions
            if not isinstance(a, argparse._HelpAction)]


class Cli(Generated):
    def lines(self):
        yield 'Global options (before the command): ``--config-file F`` ' \
              '(repeatable), ``--config-dir D``, ``--release R``, ' \
              '``--debug``.'
        yield ''
        for name, (add_arguments, _, help_text) in commands.COMMANDS.items():
            parser = argparse.ArgumentParser(prog=f'imagepipe {name}')
            add_arguments(parser)
            exclusive = {a: g._group_actions
                         for g in parser._mutually_exclusive_groups
                         for a in g._group_actions}
            yield f'``{name}``'
            yield '~' * (len(name) + 4)
            yield ''
            yield help_text[0].upper() + help_text[1:] + '.'
            yield ''
            yield f'``{_synopsis(name, parser)}``'
            yield ''
            for action in _arguments(parser):
                yield f'``{_term(action)}``'
                yield f'   {_meaning(action, exclusive)}'
            yield ''
