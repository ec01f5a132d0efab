"""How an option's history is declared (:mod:`imagepipe.conf.options`
holds the options themselves).

An option is known under one or more spellings (group and name). Each
spelling is the option's own name from ``since`` to ``until`` (inclusive),
and may stay accepted as a deprecated alias up to ``accepted_until``. A
spelling read in a release after ``accepted_until`` is ignored by that
release's Nova, and imagepipe warns about it. ``per_release`` overrides the
default, the choices or the help from a given release on, ``ignored``
included.
"""

import dataclasses

from imagepipe.conf import releases


@dataclasses.dataclass(frozen=True)
class Spelling:
    group: str
    name: str
    since: str
    until: str | None = None
    accepted_until: str | None = None

    def is_name_in(self, release):
        """This spelling is the option's own name in ``release``."""
        i = releases.index(release)
        last = self.until or releases.newest()
        return releases.index(self.since) <= i <= releases.index(last)

    def is_alias_in(self, release):
        """Accepted as a deprecated alias (after it stopped being the name)."""
        if not self.until or not self.accepted_until:
            return False
        i = releases.index(release)
        return (releases.index(self.until) < i
                <= releases.index(self.accepted_until))

    def is_retired_in(self, release):
        """Nova of ``release`` silently ignored this spelling."""
        last = self.accepted_until or self.until
        return last is not None and releases.index(last) < releases.index(
            release)

    @property
    def label(self):
        return f'[{self.group}] {self.name}'


@dataclasses.dataclass(frozen=True)
class Option:
    key: str
    type: str
    default: object
    help: str
    spellings: tuple
    choices: tuple | None = None
    per_release: tuple = ()
    sample_default: str | None = None
    #: why imagepipe reads the option but does not apply it (None: applied);
    #: per_release may set it from a release on
    ignored: str | None = None
    #: the release's Nova did not apply it either: nothing is lost, so a
    #: value set for it draws no warning
    ignored_by_nova: bool = False
    #: the commands that read it when it is no flow input (the fleet's
    #: options configure the conductor, not the steps of a run)
    read_by: str | None = None
    #: the smallest value accepted (int options; None: any)
    minimum: int | None = None

    def spelling_in(self, release):
        for s in self.spellings:
            if s.is_name_in(release):
                return s
        return None

    def aliases_in(self, release):
        return [s for s in self.spellings if s.is_alias_in(release)]

    def retired_in(self, release):
        return [s for s in self.spellings if s.is_retired_in(release)]

    def attribute(self, field, release):
        """default / choices / help as they stood in ``release``."""
        value = getattr(self, field)
        for since, changes in self.per_release:
            if releases.index(since) <= releases.index(release) and (
                    field in changes):
                value = changes[field]
        return value

    @property
    def introduced(self):
        return self.spellings[0].since


def spelling(group, name, since, until=None, accepted_until=None):
    """One spelling of an option (a shorthand for the declarations)."""
    return Spelling(group, name, since, until, accepted_until)
