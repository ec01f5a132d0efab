"""The ``imagepipe`` command, parsed the way nova-manage parses.

``imagepipe [--config-file F]... [--config-dir D] [--release R] COMMAND ...``:
oslo.config reads the files and the global options, a sub-command parser
takes the rest. Errors become one line on stderr and an exit status: 2 for
usage or configuration, 1 for a run that failed and was reverted.
"""

import logging
import os
import sys
import textwrap

from oslo_config import cfg
from oslo_log import log
from oslo_utils import importutils

from imagepipe import exception
from imagepipe import flows
from imagepipe.cmd import commands
from imagepipe.conf import loader

LOG = logging.getLogger('imagepipe')


class Context:
    """What every command gets: the parsed options for the chosen release."""

    def __init__(self, conf, rconf):
        self.conf = conf
        self.rconf = rconf


def _add_parsers(subparsers):
    for name, (add_arguments, handler, help_text) in commands.COMMANDS.items():
        parser = subparsers.add_parser(name, help=help_text,
                                       description=help_text)
        add_arguments(parser)
        parser.set_defaults(handler=handler)


def build_conf():
    conf = cfg.ConfigOpts()
    loader.register_base(conf)
    conf.register_cli_opt(cfg.SubCommandOpt(
        'command', title='commands', handler=_add_parsers,
        help='run "imagepipe COMMAND --help" for its options'))
    return conf


def version():
    from importlib import metadata
    try:
        return metadata.version('imagepipe')
    except metadata.PackageNotFoundError:
        return 'unknown'


#: the options every command takes, as the top-level help lists them
GLOBAL_HELP = """\
options (before the command):
  --config-file PATH    a nova.conf to read (repeatable; later files win)
  --config-dir DIR      read DIR/*.conf too
  --release R           Nova release to reproduce (default: [imagepipe]
                        release, else the newest)
  -d, --debug           log each command run, each step's state change and
                        tracebacks to stderr
  --version             print the version and exit
  -h, --help            this help; "imagepipe COMMAND --help" for a command
"""


def top_help():
    """The commands first, then the options every command takes (oslo's
    parser would list its --shell_completion and --nodebug first)."""
    width = max(len(name) for name in commands.COMMANDS) + 2
    lines = ['usage: imagepipe [options] COMMAND [command options]', '',
             'commands:']
    for name, (_, _, text) in commands.COMMANDS.items():
        lines += textwrap.wrap(text, 79, initial_indent='  ' + name.ljust(
            width), subsequent_indent=' ' * (width + 2))
    return '\n'.join(lines) + '\n\n' + GLOBAL_HELP


def _wants_top_help(argv):
    """-h or --help (or nothing at all) before any command."""
    for arg in argv:
        if arg in commands.COMMANDS:
            return False
        if arg in ('-h', '--help'):
            return True
    return not argv


def parse(argv):
    conf = build_conf()
    loader.parse_args(conf, argv, prog='imagepipe', version=version())
    setup_logging(conf)
    return conf


class _OwnLinesOnly(logging.Filter):
    """Keeps taskflow's records (a failed engine logs a traceback) off the
    console: the command prints the one line that matters. The log file and
    --debug keep them."""

    def filter(self, record):
        return not record.name.startswith('taskflow')


class _Masked(logging.Filter):
    """--debug lines with passwords and tokens masked (oslo.utils'
    mask_password, as processutils masked its command lines)."""

    def filter(self, record):
        from oslo_utils import strutils
        message = record.getMessage()
        masked = strutils.mask_password(message)
        if masked != message:
            record.msg, record.args = masked, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = strutils.mask_password(
                logging.Formatter().formatException(record.exc_info))
        return True


def setup_logging(conf):
    """oslo.log on a ConfigOpts of its own.

    The files given are nova.conf files: their log_file, log_config and the
    like belong to nova-compute, and imagepipe must not write into them.
    """
    log_conf = cfg.ConfigOpts()
    log.register_options(log_conf)
    log_conf([], project='imagepipe', default_config_files=[],
             default_config_dirs=[])
    log_conf.set_override('debug', conf.debug)
    log_conf.set_override('use_stderr', True)
    log_conf.set_override('log_file', conf.imagepipe.log_file)
    log_conf.set_override('logging_default_format_string',
                          '%(levelname)s: %(message)s')
    log_conf.set_override('logging_context_format_string',
                          '%(levelname)s: %(message)s')
    try:
        log.setup(log_conf, 'imagepipe')
    except OSError as e:
        raise exception.ConfigError(
            f'[imagepipe] log_file {conf.imagepipe.log_file} cannot be '
            f'opened: {e.strerror}') from None
    for handler in logging.getLogger().handlers:
        if conf.debug:
            handler.addFilter(_Masked())
        elif getattr(handler, 'stream', None) is sys.stderr:
            handler.addFilter(_OwnLinesOnly())


def release_config(conf):
    """The options of the selected release, found through its flow.

    A release is what the ``imagepipe.flows`` entry points offer; one from
    another package may read the options of a release imagepipe knows
    (``Release.conf_release``).
    """
    name = loader.selected_release(conf)
    release = flows.get(name)
    return loader.ReleaseConfig(
        conf, getattr(release, 'conf_release', None) or name, name)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if _wants_top_help(argv):
        print(top_help(), end='', file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    try:
        conf = parse(argv)
        rconf = release_config(conf)
        handler = importutils.import_class(conf.command.handler)
        return handler(conf.command, Context(conf, rconf))
    except exception.ImagepipeError as e:
        print(f'imagepipe: error: {e}', file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # output piped into head and the like
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print('imagepipe: interrupted', file=sys.stderr)
        return 130
    except Exception as e:  # the last line of defence against a traceback
        LOG.debug('unexpected error', exc_info=True)
        print(f'imagepipe: error: unexpected {type(e).__name__}: {e} '
              '(run with --debug for details)', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
