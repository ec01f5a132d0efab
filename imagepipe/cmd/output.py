"""Listings as an aligned text table or as JSON."""

import json
import sys


def _cell(value):
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return ' '.join(_cell(v) for v in value) if value else '-'
    return str(value)


def table(rows, columns, out=None):
    """Print ``rows`` (dicts) with the given (key, heading) columns."""
    out = out or sys.stdout
    cells = [[_cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells])
              for i, (_, h) in enumerate(columns)]
    line = '  '.join(h.ljust(w) for (_, h), w in zip(columns, widths))
    print(line.rstrip(), file=out)
    print('  '.join('-' * w for w in widths), file=out)
    for c in cells:
        print('  '.join(v.ljust(w) for v, w in zip(c, widths)).rstrip(),
              file=out)


def as_json(data, out=None):
    json.dump(data, out or sys.stdout, indent=2, sort_keys=False)
    print(file=out or sys.stdout)


def emit(args_format, rows, columns, out=None):
    if args_format == 'json':
        as_json(rows, out)
    else:
        table(rows, columns, out)


def add_format(parser, choices=('table', 'json')):
    parser.add_argument('--format', choices=choices, default=choices[0],
                        help='output format (default: %(default)s)')
