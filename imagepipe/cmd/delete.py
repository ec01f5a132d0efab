"""``imagepipe delete --instance NAME``: the destroy of an instance's disks.

As the libvirt driver's _cleanup_files / delete_instance_files did in every
release (nova/virt/libvirt/driver.py@2012.1.3 .. @33.0.2: the instance
directory, disk.info with it, removed whole): the files of the instance
directory go, then the directory, then its logical volumes, each cleared
first (:mod:`imagepipe.cache.volumes`). Refused while a run of the instance
is unfinished or being driven. No link is followed: a link or a directory
found inside is left, named, and the directory stays.
"""

import os
import stat

from imagepipe import exception
from imagepipe.cache import volumes
from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.conf import settings as conf_settings
from imagepipe.flows import paths as flow_paths
from imagepipe.runner import guards
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store
from imagepipe.tasks import safefs


def _check_no_run(store, directory, name):
    for fd in store.of_instance(directory):
        if run_store.state_of(fd) not in run_store.FINISHED:
            raise exception.Refused(
                f'instance {name} has an unfinished run {fd.uuid} '
                f'({run_store.state_of(fd)}): resume it first')


def destroy(directory):
    """(removed, left, directory removed) of the instance ``directory``."""
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise safefs.UnsafePath(f'{directory} is not a directory: refusing '
                                'to delete it')
    removed, left = [], []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        (removed if safefs.remove(path) else left).append(path)
    if left:
        return removed, left, False
    os.rmdir(directory)
    return removed, left, True


def run(args, ctx):
    settings = conf_settings.snapshot(ctx.rconf)
    name = flow_paths.component(args.instance, 'instance name')
    if name in (flow_paths.LOCKS, settings['image_cache_subdirectory_name']):
        raise exception.ConfigError(
            f'{name!r} is the image cache or lock directory, not an instance')
    directory = os.path.join(settings['instances_path'], name)
    kwargs = {'settings': settings, 'request': {'instance': name}}
    connection = ctx.rconf.conf.imagepipe.connection
    with persistence.usable(connection), guards.instance_lock(
            kwargs, database.lock_dir(ctx)):
        _check_no_run(database.store(ctx), directory, name)
        present = os.path.lexists(directory)
        lvs = volumes.of_instance(ctx.rconf.release, settings, name)
        if not present and not lvs:
            raise exception.Refused(f'instance {name} has no directory '
                                    f'{directory}')
        removed, left, gone = (destroy(directory) if present
                               else ([], [], False))
        volumes.destroy(ctx.rconf.release, settings, lvs)
    result = {'instance': name, 'directory': directory, 'removed': removed,
              'left': left, 'directory_removed': gone,
              'volumes_removed': lvs}
    if args.format == 'json':
        output.as_json(result)
    else:
        for path in removed:
            print(f'removed {path}')
        for path in left:
            print(f'left {path} (not a regular file: never followed)')
        for path in lvs:
            print(f'removed logical volume {path}')
    return 1 if left else 0
