"""The jobboards: taskflow's Redis jobboard, one namespace per host.

A job carries only the run id (``{"run": ID}``); the run, stored in the
shared run database with its factory details, says everything else. A
board's keys live under ``imagepipe.host.<host>:``, so a conductor iterates
the jobs of its own host only, and ``jobs`` finds every host's board by its
keys.
"""

import contextlib
import dataclasses
import urllib.parse

from imagepipe import exception

NAMESPACE = 'imagepipe.host.'

#: the board's own key holding its jobs (taskflow's ``listings_key``)
LISTINGS = ':listings'


@dataclasses.dataclass(frozen=True)
class Settings:
    url: str
    expiration: int
    max_jobs: int
    host: str


def settings(rconf, host=None):
    """The [jobboard] settings, checked; ConfigError naming a bad one."""
    url = rconf.value('jobboard_connection')
    if not url:
        raise exception.ConfigError(
            '[jobboard] connection is not set: there is no jobboard to post '
            'to or take jobs from')
    expiration = rconf.value('jobboard_expiration_time')
    if expiration < 1:
        raise exception.ConfigError(
            f'[jobboard] expiration_time {expiration} must be at least 1 '
            '(seconds)')
    max_jobs = rconf.value('jobboard_max_concurrent_jobs')
    if max_jobs < 1:
        raise exception.ConfigError(
            f'[jobboard] max_concurrent_jobs {max_jobs} must be at least 1')
    host = host or rconf.value('host')
    if not host or '*' in host or ':' in host:
        raise exception.ConfigError(
            f'host name {host!r} cannot name a jobboard ([DEFAULT] host or '
            '--host: no "*" or ":")')
    client_conf(url)
    return Settings(url, expiration, max_jobs, host)


def client_conf(url):
    """taskflow's Redis jobboard configuration of a ``redis://`` URL."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port or 6379
        db = int(parts.path.strip('/') or 0)
    except ValueError as e:
        raise _bad(url, e) from None
    if parts.scheme != 'redis' or not parts.hostname:
        raise _bad(url, 'imagepipe uses a Redis jobboard: '
                        'redis://HOST[:PORT][/DB]')
    conf = {'board': 'redis', 'host': parts.hostname, 'port': port,
            'db': db, 'socket_connect_timeout': 5.0}
    password = parts.password or dict(
        urllib.parse.parse_qsl(parts.query)).get('password')
    if password:
        conf['password'] = password
    if parts.username:
        conf['username'] = parts.username
    return conf


def _bad(url, why):
    return exception.ConfigError(
        f'[jobboard] connection {shown(url)} is not usable: {why}')


def shown(url):
    """``url`` as logs and errors show it: no password, no query."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return url.replace(f':{parts.password}@', ':***@')
    return url.split('?')[0]


def unreachable(url, error):
    while getattr(error, 'cause', None) is not None:  # taskflow's wrapping
        error = error.cause
    lines = str(error).strip().splitlines() or [type(error).__name__]
    return _bad(url, f'cannot reach it: {lines[0]}')


@contextlib.contextmanager
def opened(settings, host, name, persistence=None):
    """The board of ``host``, connected, as ``name`` (who claims)."""
    from taskflow import exceptions as tf_exceptions
    from taskflow.jobs import backends
    conf = {**client_conf(settings.url), 'namespace': NAMESPACE + host}
    try:
        board = backends.fetch(name, conf, persistence=persistence)
        board.connect()
    except (tf_exceptions.TaskFlowException, OSError) as e:
        raise unreachable(settings.url, e) from None
    with contextlib.closing(board):
        yield board


def channel(host):
    """The Redis channel that wakes the conductors of ``host``
    (:mod:`imagepipe.fleet.wakeup`)."""
    return f'{NAMESPACE}{host}:posted'


def post(board, run_id):
    """Post the job of run ``run_id``, and wake the host's conductors."""
    import redis
    job = board.post(f'run-{run_id}', details={'run': run_id})
    with contextlib.suppress(redis.RedisError):  # they look anyway, later
        board._client.publish(channel(board.namespace[len(NAMESPACE):]),
                              b'posted')
    return job


def hosts(settings):
    """The hosts that have jobs on the Redis server of ``settings``."""
    import redis
    conf = client_conf(settings.url)
    client = redis.Redis(**{k: v for k, v in conf.items() if k != 'board'})
    try:
        keys = list(client.scan_iter(match=f'{NAMESPACE}*{LISTINGS}'))
    except redis.RedisError as e:
        raise unreachable(settings.url, e) from None
    finally:
        client.close()
    return sorted({k.decode()[len(NAMESPACE):-len(LISTINGS)] for k in keys})


def run_of(job):
    """The run id a job carries, None if its details hold none."""
    details = job.details
    run_id = details.get('run') if isinstance(details, dict) else None
    return run_id if isinstance(run_id, str) and run_id else None


def owner(board, job):
    """Who holds ``job``'s claim, None if nobody (taskflow's find_owner
    raises TypeError on an unclaimed Redis job)."""
    try:
        return board.find_owner(job)
    except TypeError:
        return None
