"""``imagepipe config``: every effective option of the release."""

from imagepipe.cmd import output


def run(args, ctx):
    rows = ctx.rconf.items()
    output.emit(args, rows, [('option', 'OPTION'), ('value', 'VALUE'),
                                    ('source', 'SOURCE'), ('note', 'NOTE')])
    return 0
