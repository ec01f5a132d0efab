"""Which configuration file set which spelling of an option.

oslo.config answers with the value; imagepipe also has to say where a value
came from (a deprecated name?), point at the file of a bad value, and notice
names a release no longer reads. This reads the same files, in the same order
oslo.config does, with oslo.config's own parser.
"""

import argparse
import glob
import os

from oslo_config import cfg

from imagepipe import exception


def _given(argv):
    """The --config-file and --config-dir values in ``argv``, in order.

    oslo.config keeps only the last --config-dir, and one naming a file
    reads nothing without a word, so the command line itself is read.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument('--config-file', action='append', default=[])
    parser.add_argument('--config-dir', action='append', default=[])
    known, _ = parser.parse_known_args(argv)
    return known.config_file, known.config_dir


def check_given(argv):
    """Refuse, as one line, the config files and directories in ``argv``
    that oslo.config would ignore or fail on with a traceback: a directory
    given as a file, a file or a missing path as a directory, a file that
    is not UTF-8 text. A missing file is left to oslo.config."""
    files, dirs = _given(argv)
    for d in dirs:
        if not os.path.isdir(d):
            why = 'is not a directory' if os.path.exists(d) else (
                'does not exist')
            raise exception.ConfigError(f'--config-dir {d} {why}')
        files += sorted(glob.glob(os.path.join(d, '*.conf')))
    for path in files:
        if os.path.isdir(path):
            raise exception.ConfigError(
                f'config file {path} is a directory')
        try:
            with open(path, 'rb') as f:
                f.read().decode('utf-8')
        except FileNotFoundError:
            continue
        except OSError as e:
            raise exception.ConfigError(
                f'cannot read config file {path}: {e.strerror}') from None
        except UnicodeDecodeError as e:
            raise exception.ConfigError(
                f'config file {path} is not UTF-8 text (byte {e.start} is '
                f'{e.object[e.start]:#04x})') from None


def config_files(conf):
    """The files ``conf`` read, in the order later ones override earlier."""
    files = list(conf.config_file or [])
    for d in conf.config_dir or []:
        files += sorted(glob.glob(os.path.join(d, '*.conf')))
    return files


class Files:
    def __init__(self, paths):
        self.parsed = []
        for path in paths:
            sections = {}
            try:
                cfg.ConfigParser(path, sections).parse()
            except (OSError, UnicodeDecodeError, cfg.ParseError) as e:
                raise exception.ConfigError(
                    f'cannot read config file {path}: {e}') from None
            self.parsed.append((path, sections))

    def where(self, spellings):
        """(file, spelling, raw value) that decides among ``spellings``.

        Follows oslo.config: the last file setting any of them wins, and in
        one file the first spelling (the current name) beats the aliases.
        """
        for path, sections in reversed(self.parsed):
            for s in spellings:
                values = sections.get(s.group, {}).get(s.name)
                if values:
                    return path, s, values[-1]
        return None

    def setters(self, spelling):
        """Files that set ``spelling``."""
        return [p for p, sections in self.parsed
                if sections.get(spelling.group, {}).get(spelling.name)]
