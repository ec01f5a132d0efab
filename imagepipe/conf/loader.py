"""Build the configuration one Nova release would have read.

The command line parses the files first with only imagepipe's own options
registered (enough to learn the release), then :func:`for_release` registers
the options of that release, with the deprecated names that release accepted,
on the same ConfigOpts.
"""

import logging

from oslo_config import cfg
from oslo_utils import netutils

from imagepipe import exception
from imagepipe.conf import files as conf_files
from imagepipe.conf import options
from imagepipe.conf import releases
from imagepipe.conf import spellings

LOG = logging.getLogger(__name__)

IMAGEPIPE_GROUP = 'imagepipe'

IMAGEPIPE_OPTS = [
    cfg.StrOpt('release', default=releases.newest(),
               help='Nova release whose behaviour imagepipe reproduces '
                    '(the --release command-line option wins).'),
    cfg.StrOpt('connection',
               default='sqlite:///$state_path/imagepipe.sqlite',
               help='URL of the run database (taskflow persistence): '
                    'sqlite:///PATH, created on first use, or a SQLAlchemy '
                    'URL of another database.'),
    cfg.IntOpt('download_retries', default=3, min=0,
               help='Times an interrupted download is continued (with an '
                    'HTTP Range request) before the run fails.'),
    cfg.StrOpt('log_file',
               help='Write the detailed log here (nova.conf logging options '
                    'are not used: they belong to nova-compute).'),
]

CLI_OPTS = [
    cfg.StrOpt('release', metavar='R',
               help='Nova release to reproduce (default: [imagepipe] '
                    'release, else the newest).'),
    cfg.BoolOpt('debug', short='d', default=False,
                help='Log debug detail (tracebacks included) to stderr.'),
]

_OPT_CLASSES = {'str': cfg.StrOpt, 'bool': cfg.BoolOpt, 'int': cfg.IntOpt,
                'list': cfg.ListOpt}

_ACCEPTED = {'bool': 'true or false', 'int': 'an integer',
             'list': 'a comma-separated list', 'str': 'a string'}


def register_base(conf):
    """Options every release shares: imagepipe's own group and --release."""
    conf.register_opts(IMAGEPIPE_OPTS, group=IMAGEPIPE_GROUP)
    conf.register_cli_opts(CLI_OPTS)


def parse_args(conf, argv, **kwargs):
    """``conf(argv)`` for imagepipe: no default files, errors as one line."""
    conf_files.check_given(argv)
    try:
        conf(argv, project='imagepipe', default_config_files=[],
             default_config_dirs=[], **kwargs)
    except cfg.Error as e:
        raise exception.ConfigError(str(e).strip().splitlines()[0]) from None


def selected_release(conf):
    """The release asked for: --release, else [imagepipe] release."""
    return conf.release or conf.imagepipe.release


def history(opt):
    """One sentence of the option's names across releases."""
    parts = []
    for s in opt.spellings:
        text = f'{s.label} from {s.since}'
        if s.until:
            text += f' to {s.until}'
            if s.accepted_until:
                text += f' (deprecated alias in {s.accepted_until})'
        parts.append(text)
    return 'History: ' + '; '.join(parts) + '.'


def oslo_opt(opt, release):
    """The oslo.config option ``opt`` was in ``release``."""
    own = opt.spelling_in(release)
    ignored = opt.attribute('ignored', release)
    no_effect = f' Read, no effect in imagepipe: {ignored}.' if ignored else ''
    kwargs = dict(
        default=opt.attribute('default', release),
        help=f"{opt.attribute('help', release)}{no_effect} {history(opt)}",
        deprecated_opts=[cfg.DeprecatedOpt(a.name, group=a.group)
                         for a in opt.aliases_in(release)],
    )
    if opt.key == 'my_ip':
        kwargs['default'] = netutils.get_my_ipv4()
    if opt.sample_default:
        kwargs['sample_default'] = opt.sample_default
    choices = opt.attribute('choices', release)
    if choices:
        kwargs['choices'] = list(choices)
    if opt.minimum is not None:
        kwargs['min'] = opt.minimum
    return _oslo_group(own.group), _OPT_CLASSES[opt.type](own.name, **kwargs)


def _oslo_group(group):
    # oslo.config's DEFAULT section is group None; a group named 'DEFAULT'
    # would be a different, empty one.
    return None if group == 'DEFAULT' else group


def note_of(opt, release):
    """What ``config`` says of an option that is no flow input."""
    ignored = opt.attribute('ignored', release)
    if ignored:
        return f'read, no effect in imagepipe: {ignored}'
    if opt.read_by:
        return f'read by {opt.read_by}, not by a flow'
    return None


class ReleaseConfig:
    """The effective options of one release, with where each came from."""

    def __init__(self, conf, options_release, name=None):
        """``options_release``: the release whose options are read; ``name``:
        the flow's release name when it differs (a release from another
        package that reads, say, Juno's options)."""
        releases.index(options_release)
        self.conf = conf
        self.options_release = options_release
        self.release = name or options_release
        self.options = options.for_release(options_release)
        self.files = conf_files.Files(conf_files.config_files(conf))
        for opt in self.options:
            group, o = oslo_opt(opt, options_release)
            conf.register_opt(o, group=group)
        self._check_own()
        self.warnings = list(self._retired_names())
        for line in self.warnings:
            LOG.warning(line)

    def _check_own(self):
        """Every [imagepipe] value read once, a bad one refused as one line
        naming it (oslo.config checks a value when it is first read)."""
        for o in IMAGEPIPE_OPTS:
            try:
                self.conf.imagepipe[o.dest]
            except (cfg.ConfigFileValueError, ValueError) as e:
                found = self.files.where([spellings.Spelling(
                    IMAGEPIPE_GROUP, o.name, releases.RELEASES[0])])
                raw, where = (repr(found[2]), f' in {found[0]}') if found \
                    else ('', '')
                why = str(e).rsplit('is not valid: ', 1)[-1].strip()
                raise exception.ConfigError(
                    f'invalid value {raw} for [imagepipe] {o.name}{where}: '
                    f'{why[:1].lower()}{why[1:]}') from None

    def _retired_names(self):
        for opt in options.OPTIONS:
            own = opt.spelling_in(self.options_release)
            for s in opt.retired_in(self.options_release):
                for path in self.files.setters(s):
                    hint = (f'; use {own.label}' if own else '')
                    yield (f'{s.label} in {path} is ignored: Nova stopped '
                           f'reading it after {s.accepted_until or s.until}'
                           f'{hint}')

    def _spellings(self, opt):
        release = self.options_release
        return [opt.spelling_in(release)] + opt.aliases_in(release)

    def value(self, key):
        """The effective value; ConfigError naming option, file, accepted."""
        opt = options.BY_KEY[key]
        own = opt.spelling_in(self.options_release)
        try:
            group = _oslo_group(own.group)
            return (self.conf[own.name] if group is None
                    else self.conf[group][own.name])
        except (cfg.ConfigFileValueError, ValueError):
            raise self._bad_value(opt) from None
        except cfg.Error as e:
            # e.g. a $name in the value that names no option imagepipe knows
            found = self.files.where(self._spellings(opt))
            where = f' in {found[0]}' if found else ''
            raise exception.ConfigError(
                f'cannot resolve {own.label}{where}: {e}') from None

    def _bad_value(self, opt):
        found = self.files.where(self._spellings(opt))
        path, spelling, raw = found if found else ('?', opt.spelling_in(
            self.options_release), '?')
        choices = opt.attribute('choices', self.options_release)
        accepted = ', '.join(choices) if choices else _ACCEPTED[opt.type]
        if opt.minimum is not None:
            accepted += f' of at least {opt.minimum}'
        return exception.ConfigError(
            f'invalid value {raw!r} for {spelling.label} in {path} '
            f'(release {self.release}): accepted values are {accepted}')

    def source(self, key):
        """Where the value came from: default, file and name, command line."""
        opt = options.BY_KEY[key]
        found = self.files.where(self._spellings(opt))
        if not found:
            return 'default'
        path, spelling, _ = found
        if spelling is opt.spelling_in(self.options_release):
            return f'{path} {spelling.label}'
        return f'{path} {spelling.label} (deprecated name)'

    def ignored(self):
        """One line for each option set to a value imagepipe reads but
        does not apply, saying why."""
        release = self.options_release
        return [f'{opt.spelling_in(release).label} = '
                f'{self.value(opt.key)} is read but ignored: '
                f"{opt.attribute('ignored', release)}"
                for opt in self.options
                if opt.attribute('ignored', release)
                and not opt.attribute('ignored_by_nova', release)
                and self.value(opt.key) != opt.attribute('default', release)]

    def items(self):
        """Every option of the release: key, name, value, source, note
        (why imagepipe ignores it, if it does)."""
        rows = []
        for opt in self.options:
            own = opt.spelling_in(self.options_release)
            rows.append({'key': opt.key, 'option': own.label,
                         'value': self.value(opt.key),
                         'source': self.source(opt.key),
                         'note': note_of(opt, self.options_release)})
        for o in IMAGEPIPE_OPTS:
            value = (self.release if o.dest == 'release'
                     else self.conf.imagepipe[o.dest])
            rows.append({'key': o.dest, 'option': f'[imagepipe] {o.name}',
                         'value': value, 'source': self._own_source(o),
                         'note': None})
        return rows

    def _own_source(self, o):
        if o.dest == 'release' and self.conf.release:
            return 'command line'
        found = self.files.where([spellings.Spelling(
            IMAGEPIPE_GROUP, o.name, releases.RELEASES[0])])
        return f'{found[0]} [imagepipe] {o.name}' if found else 'default'


def load(config_files=(), config_dir=None, release=None, args=()):
    """Parse files the way the command line does; for tests and tools."""
    argv = list(args)
    for f in config_files:
        argv += ['--config-file', f]
    if config_dir:
        argv += ['--config-dir', config_dir]
    if release:
        argv += ['--release', release]
    conf = cfg.ConfigOpts()
    register_base(conf)
    parse_args(conf, argv)
    return ReleaseConfig(conf, selected_release(conf))

