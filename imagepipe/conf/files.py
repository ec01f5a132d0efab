"""Which configuration file set which spelling of an option.

oslo.config answers with the value; imagepipe also has to say where a value
came from (a deprecated name?), point at the file of a bad value, and notice
names a release no longer reads. This reads the same files, in the same order
oslo.config does, with oslo.config's own parser.
"""

import glob
import os

from oslo_config import cfg

from imagepipe import exception


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
            except (OSError, cfg.ParseError) as e:
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
