"""The Nova releases whose option sets imagepipe knows, oldest first.

Option histories (imagepipe.conf.options) name releases from this list; the
flows for a release are found separately, through stevedore. The list has
a gap: after Juno comes today's Nova (2026.1 Gazpacho, Nova 33.0.2), so
"until juno" in an option's history means "gone by Gazpacho".
"""

from imagepipe import exception

RELEASES = ('essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno',
            'gazpacho')


def index(release):
    """Position of ``release`` in history; ConfigError when unknown."""
    try:
        return RELEASES.index(release)
    except ValueError:
        raise exception.ConfigError(
            f'unknown release {release!r}: known releases are '
            f'{", ".join(RELEASES)}') from None


def newest():
    return RELEASES[-1]
