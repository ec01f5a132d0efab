"""``imagepipe precache --image REF [--host NAME]...``: today's pre-caching.

As nova/virt/libvirt/driver.py@33.0.2 cache_image: an existing base gets a
fresh mtime (``existing``); a missing one is fetched and converted as
force_raw_images says (``cached``). Either way it is a stored run of the
pre-cache flow (:mod:`imagepipe.cache.precache`), whose first step says
which it was. Without ``--host`` the run happens here, in-process; with
``--host``, each host's conductor runs it (:mod:`imagepipe.fleet.precache`,
``[image_cache] precache_concurrency`` hosts at a time) and the command
waits for all of them. Exit status 1 when any host ended in ``error``.

The flow is built from this command's configuration, which must therefore
be the hosts' (their instances_path, force_raw_images and the like), as
for ``boot``.
"""

import os
import sys

from oslo_utils import uuidutils

from imagepipe import exception
from imagepipe.cache import precache as precache_flow
from imagepipe.cache import usage
from imagepipe.cmd import database
from imagepipe.cmd import outcome
from imagepipe.cmd import output
from imagepipe.cmd import request as request_args
from imagepipe.conf import settings as conf_settings
from imagepipe.fleet import board as boards
from imagepipe.fleet import precache as fleet_precache
from imagepipe.flows import paths as flow_paths
from imagepipe.runner import driver
from imagepipe.runner import persistence

#: seconds a host's job may stay unclaimed before that host is an error
DEFAULT_TIMEOUT = 60.0

COLUMNS = [('host', 'HOST'), ('status', 'STATUS'), ('run', 'RUN'),
           ('error', 'ERROR')]


def _prepared(args, ctx):
    """The factory arguments of a pre-cache of ``--image``, its flow and
    the row every host's result starts from."""
    if ctx.rconf.options_release != 'gazpacho':
        raise exception.ConfigError(
            'precache is Nova 21.0.0+ (aggregate image pre-caching): use '
            '--release gazpacho')
    settings = conf_settings.snapshot(ctx.rconf)
    image = request_args.image_ref(args.image)
    base_dir = usage.base_dir(ctx.rconf.release, settings)
    request = {'operation': precache_flow.OPERATION, 'image': image,
               'instance': os.path.basename(base_dir)}
    kwargs = {'release': ctx.rconf.release, 'settings': settings,
              'request': request}
    row = {'image': image,
           'base': os.path.join(base_dir, flow_paths.image_hex(image))}
    return kwargs, precache_flow.build(**kwargs), row


def run(args, ctx):
    kwargs, flow, row = _prepared(args, ctx)
    if args.target_hosts:
        return _on_hosts(args, ctx, kwargs, flow, row)
    with persistence.usable(database.connection(ctx)):
        store = database.store(ctx)
        run_id, state, step, error = driver.start_operation(
            store, kwargs, flow, database.lock_dir(ctx))
        status, error = precache_flow.status(store.get(run_id))
    if status is None:  # suspended by a signal: as run says it
        return outcome.exit_status(run_id, state, step, error, {})
    result = {**row, 'run': run_id, 'status': status, 'error': error}
    if args.format == 'json' and not args.column:
        output.as_json(result)  # one host: one object
    else:
        output.emit(args, [{'host': ctx.rconf.value('host'), **result}],
                    COLUMNS)
    if error:
        raise exception.ImagepipeError(f'precache failed: {error}')
    return 0


def _on_hosts(args, ctx, kwargs, flow, row):
    hosts = list(dict.fromkeys(args.target_hosts))
    settings = [boards.settings(ctx.rconf, h) for h in hosts][0]
    concurrency = ctx.rconf.value('precache_concurrency')
    if concurrency < 1:
        raise exception.ConfigError(
            f'[image_cache] precache_concurrency {concurrency} must be at '
            'least 1')
    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    with persistence.usable(database.connection(ctx)):
        store = database.store(ctx)

        def new_run():
            run_id = uuidutils.generate_uuid()
            store.create(kwargs, flow, run_id)
            return run_id

        done = fleet_precache.Hosts(store, settings, new_run, concurrency,
                                    timeout).run(hosts)
    rows = [{'host': h, 'status': done[h][0], 'run': done[h][1], **row,
             'error': done[h][2]} for h in hosts]
    output.emit(args, rows, COLUMNS)
    failed = [r['host'] for r in rows if r['status'] == 'error']
    if failed:
        print(f'imagepipe: error: precache failed on {len(failed)} of '
              f'{len(rows)} hosts: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0
