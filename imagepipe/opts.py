"""Options for oslo-config-generator: the newest release's, and imagepipe's.

Each option's help carries its history across releases; ``imagepipe config
--release R`` shows what a given release reads.
"""

from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import releases


def list_opts():
    release = releases.newest()
    grouped = {}
    for opt in options.for_release(release):
        group, o = loader.oslo_opt(opt, release)
        grouped.setdefault(group or 'DEFAULT', []).append(o)
    grouped['imagepipe'] = list(loader.IMAGEPIPE_OPTS)
    return sorted(grouped.items(), key=lambda kv: (kv[0] != 'DEFAULT',
                                                    kv[0]))

