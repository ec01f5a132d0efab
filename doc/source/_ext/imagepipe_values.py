"""Values and tables in reST, written the way a reader meets them.

A command is a command line (``mkfs -t ext3``), a boolean yes or no (or
``true``/``false`` where it is a nova.conf value), a missing value "-"; the
example paths are shortened to ``$I`` (instances_path), ``$B`` (the image
cache) and ``$hex`` (the image's cache name). A table cell never starts
with something reST would read as a list.
"""

import re
import shlex

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from imagepipe.flows import paths

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
    'glance_num_retries': 0, 'glance_api_insecure': False,
    'download_retries': 3,
}
DOC_REQUEST = {'image': 'f6a6c2a8-7d02-4c0b-9e2a-2d8c4d1a0b7e',
               'instance': 'instance-00000001', 'root_gb': 10,
               'ephemeral_gb': 0, 'swap_mb': 0}

_SHORT = (
    (DOC_SETTINGS['instances_path'] + '/_base/', '$B/'),
    (DOC_SETTINGS['instances_path'] + '/', '$I/'),
    (paths.image_hex(DOC_REQUEST['image']), '$hex'),
)

#: traits that hold a command (a tool name or an argv)
COMMAND_TRAITS = ('ephemeral_mkfs',)

#: what reST would start a list with, at the start of a cell
_LIST_START = re.compile(r'([-*+•](\s|$)|(\d+|#|[a-zA-Z])[.)](\s|$)|\()')


def short(text):
    """``text`` with the example's paths and image hash shortened."""
    for long, abbreviation in _SHORT:
        text = text.replace(long, abbreviation)
    return text


def command_line(argv):
    """A command (a tool name or an argv) as it is typed."""
    return argv if isinstance(argv, str) else shlex.join(argv)


def trait_value(value, name=None):
    """reST for the value of the release trait ``name``."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if name in COMMAND_TRAITS:
        return f'``{command_line(value)}``'
    if isinstance(value, (tuple, list)):
        if not value:
            return 'none'
        return ', '.join(
            f'``{v[0]}`` ({", ".join(v[1:])})' if isinstance(v, tuple)
            else trait_value(v) for v in value)
    return f'``{value}``'


def conf_value(value):
    """An option's value as it is written in nova.conf (None: unset)."""
    if value is None:
        return 'unset'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (tuple, list)):
        return ', '.join(map(str, value))
    return str(value)


def _cell(text):
    text = ' '.join(('' if text is None else str(text)).split()) or '-'
    return '\\' + text if _LIST_START.match(text) else text


def table(header, rows, widths=None):
    """A list-table; a cell is a text or a list of paragraphs."""
    yield '.. list-table::'
    yield '   :header-rows: 1'
    yield '   :class: generated'
    if widths:
        yield f'   :widths: {" ".join(map(str, widths))}'
    yield ''
    for row in [header] + rows:
        for i, cell in enumerate(row):
            paragraphs = [_cell(p) for p in
                          (cell if isinstance(cell, list) else [cell])]
            paragraphs = paragraphs or [_cell('')]
            yield ('   * - ' if i == 0 else '     - ') + paragraphs[0]
            for paragraph in paragraphs[1:]:
                yield ''
                yield '       ' + paragraph
    yield ''


class Generated(Directive):
    """Emit the reST lines produced by :meth:`lines`."""

    def lines(self):
        raise NotImplementedError

    def run(self):
        lines = StringList(list(self.lines()), source='imagepipe_docs')
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(lines, self.content_offset, container,
                                match_titles=True)
        return container.children
