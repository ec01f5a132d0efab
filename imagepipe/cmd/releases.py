"""``imagepipe releases``: the release flows installed."""

from imagepipe import flows
from imagepipe.cmd import output


def run(args, ctx):
    rows = [{'name': r.name, 'nova_tag': r.nova_tag, 'date': r.date,
             'options': list(r.options)}
            for r in flows.registered().values()]
    output.emit(args, rows, [
        ('name', 'RELEASE'), ('nova_tag', 'NOVA TAG'), ('date', 'DATE'),
        ('options', 'OPTIONS THAT SHAPE THE FLOW')])
    return 0
