"""The options of many hosts (doc/source/fleet.rst): Nova's ``host`` and
imagepipe's own ``[jobboard]`` group."""

import socket

from imagepipe.conf.spellings import Option
from imagepipe.conf.spellings import spelling as _one

OPTIONS = (
    Option('host', 'str', socket.gethostname(),
           'Name of this host: a conductor takes the jobs posted for it. '
           'Like Nova, the host name by default.',
           (_one('DEFAULT', 'host', 'essex'),),
           sample_default='<the host name>',
           read_by='imagepipe boot, conductor and jobs'),
    Option('jobboard_connection', 'str', None,
           'URL of the jobboard boots are posted to and conductors take '
           'them from (taskflow jobboard, e.g. redis://127.0.0.1:6379, '
           'with an optional /DB and ?password=...); unset: no jobboard, '
           'runs happen in the process that asks. imagepipe\'s own option.',
           (_one('jobboard', 'connection', 'essex'),),
           read_by='imagepipe boot, conductor and jobs'),
    Option('jobboard_expiration_time', 'int', 30,
           'Seconds a conductor\'s claim on a job lasts unless renewed; a '
           'running job renews it every quarter of this, so only a '
           'conductor that died loses its jobs, this long after. '
           'imagepipe\'s own option.',
           (_one('jobboard', 'expiration_time', 'essex'),),
           read_by='imagepipe conductor'),
    Option('jobboard_max_concurrent_jobs', 'int', 10,
           'Jobs one conductor runs at the same time. imagepipe\'s own '
           'option; its default is that of Nova\'s max_concurrent_builds '
           '(nova/conf/compute.py@33.0.2), the builds one nova-compute ran '
           'at once.',
           (_one('jobboard', 'max_concurrent_jobs', 'essex'),),
           read_by='imagepipe conductor'),
)
