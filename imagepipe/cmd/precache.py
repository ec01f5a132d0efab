"""``imagepipe precache --image REF``: today's pre-caching on this host.

As nova/virt/libvirt/driver.py@33.0.2 cache_image: an existing base gets a
fresh mtime ("existing"); a missing one is fetched and converted as
force_raw_images says ("cached"), as a stored run of the boot's fetch
section. Both under the fetch lock a boot takes, so a cache pass never sees
half of it. Nova's own cache_image took no lock (doc/source/cache.rst).
"""

import os

from imagepipe import exception
from imagepipe.cache import precache as precache_flow
from imagepipe.cache import usage
from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.cmd import request as request_args
from imagepipe.conf import settings as conf_settings
from imagepipe.flows import paths as flow_paths
from imagepipe.runner import driver
from imagepipe.runner import persistence
from imagepipe.tasks import locks
from imagepipe.tasks import safefs


def _touch_if_there(base, lock):
    with locks.held(lock):
        try:
            fd = safefs.open_existing(base)
        except FileNotFoundError:
            return False
        try:
            os.utime(fd)
        finally:
            os.close(fd)
        return True


def run(args, ctx):
    if ctx.rconf.options_release != 'gazpacho':
        raise exception.ConfigError(
            'precache is Nova 21.0.0+ (aggregate image pre-caching): use '
            '--release gazpacho')
    settings = conf_settings.snapshot(ctx.rconf)
    image = request_args.image_ref(args.image)
    base_dir = usage.base_dir(ctx.rconf.release, settings)
    name = flow_paths.image_hex(image)
    base = os.path.join(base_dir, name)
    lock = {'name': name, 'external': True, 'last': True,
            'path': os.path.join(settings['instances_path'],
                                 flow_paths.LOCKS)}
    result = {'image': image, 'base': base, 'run': None}
    if _touch_if_there(base, lock):
        result['status'] = 'existing'
    else:
        request = {'operation': precache_flow.OPERATION, 'image': image,
                   'instance': os.path.basename(base_dir)}
        kwargs = {'release': ctx.rconf.release, 'settings': settings,
                  'request': request}
        flow = precache_flow.build(**kwargs)
        connection = ctx.rconf.conf.imagepipe.connection
        with persistence.usable(connection):
            run_id, state, step, error = driver.start_operation(
                database.store(ctx), kwargs, flow, database.lock_dir(ctx))
        result.update(run=run_id, status='cached' if error is None
                      else 'error', error=error)
    if args.format == 'json':
        output.as_json(result)
    else:
        print(f"{result['status']}: {base}"
              + (f" (run {result['run']})" if result['run'] else ''))
    if result.get('error'):
        raise exception.ImagepipeError(f"precache failed: {result['error']}")
    return 0
