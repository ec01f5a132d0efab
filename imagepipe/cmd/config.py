"""``imagepipe config``: every effective option of the release."""

from imagepipe.cmd import output


def add_arguments(parser):
    output.add_format(parser)


def run(args, ctx):
    rows = ctx.rconf.items()
    output.emit(args.format, rows, [('option', 'OPTION'), ('value', 'VALUE'),
                                    ('source', 'SOURCE')])
    return 0


COMMANDS = {
    'config': (add_arguments, run,
               'show every option the release reads, its value and origin'),
}
