"""What the commands print: tables, JSON, and the units in both.

Listings follow the openstack client's conventions (cliff's formatters):
``-f table|json|value|csv`` and ``-c COLUMN`` (repeatable) to keep some
columns. One unit everywhere: sizes are bytes and durations seconds
(floats) in the data, so in JSON, CSV and value output; a table shows sizes
human-readable and durations in seconds with two decimals
(:mod:`imagepipe.units`). A table fits :data:`WIDTH` columns: the widest
columns are narrowed and their cells wrapped onto more lines.
"""

import csv
import json
import sys
import textwrap

from imagepipe import exception
from imagepipe import units

#: the width a table fits
WIDTH = 100

#: the narrowest a column is made (its heading may be wider)
NARROWEST = 8

LISTING_FORMATS = ('table', 'json', 'value', 'csv')


#: how a table shows a column's values, by the column's kind
KINDS = {'size': units.size, 'seconds': units.seconds}


def _cell(value):
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return ' '.join(_cell(v) for v in value) if value else '-'
    return str(value)


def _shown(row, column):
    key, _, *kind = column
    value = row.get(key)
    if kind and value is not None:
        value = KINDS[kind[0]](value)
    return _cell(value)


def _widths(cells, headings, width):
    widths = [max([len(h)] + [len(c[i]) for c in cells])
              for i, h in enumerate(headings)]
    room = width - 2 * (len(widths) - 1)
    while sum(widths) > room:
        widest = max(range(len(widths)), key=widths.__getitem__)
        floor = max(NARROWEST, len(headings[widest]))
        if widths[widest] <= floor:
            break
        widths[widest] -= 1
    return widths


def _lines(cells, widths):
    wrapped = [textwrap.wrap(c, w, break_on_hyphens=False) or ['']
               for c, w in zip(cells, widths)]
    for i in range(max(len(w) for w in wrapped)):
        yield '  '.join((w[i] if i < len(w) else '').ljust(n)
                        for w, n in zip(wrapped, widths)).rstrip()


def table(rows, columns, out=None, width=WIDTH):
    """Print ``rows`` (dicts) under ``columns``: (key, heading[, kind])."""
    out = out or sys.stdout
    headings = [c[1] for c in columns]
    cells = [[_shown(r, c) for c in columns] for r in rows]
    widths = _widths(cells, headings, width)
    for line in _lines(headings, widths):
        print(line, file=out)
    print('  '.join('-' * w for w in widths), file=out)
    for c in cells:
        for line in _lines(c, widths):
            print(line, file=out)


def as_json(data, out=None):
    json.dump(data, out or sys.stdout, indent=2, sort_keys=False)
    print(file=out or sys.stdout)


def _selected(columns, names):
    """The columns ``-c`` names (by heading or key), in the order given."""
    if not names:
        return columns
    chosen = []
    for name in names:
        found = [c for c in columns
                 if name.lower() in (c[0].lower(), c[1].lower())]
        if not found:
            raise exception.ConfigError(
                f'-c {name}: no such column (columns: '
                f'{", ".join(c[1] for c in columns)})')
        chosen.append(found[0])
    return chosen


def emit(args, rows, columns, out=None):
    """``rows`` in the format and columns the command line asked for."""
    out = out or sys.stdout
    columns = _selected(columns, getattr(args, 'column', None))
    if args.format == 'json':
        as_json([{c[0]: r.get(c[0]) for c in columns} for r in rows]
                if getattr(args, 'column', None) else rows, out)
    elif args.format == 'value':
        for r in rows:
            print(' '.join(_cell(r.get(c[0])) for c in columns), file=out)
    elif args.format == 'csv':
        writer = csv.writer(out, lineterminator='\n')
        writer.writerow([c[1] for c in columns])
        for r in rows:
            writer.writerow(['' if r.get(c[0]) is None else r.get(c[0])
                             for c in columns])
    else:
        table(rows, columns, out)


def add_format(parser, choices=('table', 'json')):
    parser.add_argument('-f', '--format', choices=choices,
                        default=choices[0],
                        help='output format (default: %(default)s)')


def add_listing(parser):
    """``-f table|json|value|csv`` and ``-c COLUMN``, as the openstack
    client's listings take them."""
    add_format(parser, LISTING_FORMATS)
    parser.add_argument('-c', '--column', action='append', metavar='COLUMN',
                        help='show this column (by heading or key); repeat '
                             'for more (default: all)')
