"""Who uses a cached image: runs in the run database, and instance disks.

Nova knew its instances from its database; imagepipe's are the runs that
built an instance whose directory still exists. A run uses, in its base
directory, ``<hex>`` of its image, every ``<hex>_*`` made from it and the
ephemeral and swap bases its request names. Instance disks are read on disk:
the backing file named by the qcow2 header of each ``disk*`` file of each
directory of instances_path (:mod:`imagepipe.cache.qcow2`, no process per
disk, no link followed).
"""

import os
import stat

from imagepipe import exception
from imagepipe import flows
from imagepipe.cache import qcow2
from imagepipe.flows import paths as flow_paths
from imagepipe.runner import store as run_store
from imagepipe.tasks import safefs

#: files of an instance directory that are records, not disks
RECORDS = ('disk.info',)


def base_dir(release, settings):
    """The base directory a release's flows use with ``settings``."""
    name = settings.get('image_cache_subdirectory_name') or '_base'
    try:
        if not flows.get(release).traits.base_dir_option:
            name = '_base'
    except exception.ConfigError:  # a release no longer installed
        pass
    return os.path.join(settings['instances_path'], name)


def _generated(release, request):
    """Names of the ephemeral and swap bases a request makes."""
    names = []
    try:
        traits = flows.get(release).traits
    except exception.ConfigError:  # a release no longer installed
        return names
    if request.get('ephemeral_gb'):
        names.append(traits.ephemeral_name.format(gb=request['ephemeral_gb']))
    if request.get('swap_mb'):
        names.append(f"swap_{request['swap_mb']}")
    return names


def run_uses(runs):
    """One dict per boot run in the RunStore ``runs``."""
    found = []
    for fd in runs.all():
        try:
            kwargs = run_store.factory_kwargs(fd)
        except (KeyError, TypeError):
            continue
        request, settings = kwargs.get('request', {}), kwargs['settings']
        if request.get('operation') or not request.get('image'):
            continue
        meta = fd.meta.get('imagepipe', {})
        found.append({
            'run': fd.uuid, 'state': run_store.state_of(fd),
            'finished': meta.get('finished'),
            'instance': request.get('instance'),
            'instance_dir': run_store.instance_dir(kwargs),
            'base_dir': base_dir(kwargs['release'], settings),
            'hex': flow_paths.image_hex(request['image']),
            'generated': _generated(kwargs['release'], request),
            'backend': settings.get('images_type_effective')})
    return found


def names_used(use, name):
    """True when the run ``use`` uses the base file ``name``."""
    return (name == use['hex'] or name.startswith(use['hex'] + '_')
            or name in use['generated'])


def unfinished(use):
    return use['state'] not in run_store.FINISHED


def is_instance(use):
    """A finished run whose instance is still there: Nova's instance."""
    return use['state'] == 'SUCCESS' and os.path.isdir(use['instance_dir'])


def _disk_names(directory):
    try:
        names = os.listdir(directory)
    except OSError as e:
        return None, e
    return sorted(n for n in names if n.startswith('disk')
                  and n not in RECORDS), None


def disk_uses(instances_path, skip):
    """({base file name: [(instance, disk)]}, warnings, unread) of every
    instance disk under ``instances_path``; ``skip``: directory names that
    are no instances (the base directory, the locks). ``unread`` names the
    instance directories and disks whose backing file could not be known."""
    uses, warnings, unread = {}, [], []
    try:
        entries = sorted(os.listdir(instances_path))
    except FileNotFoundError:
        return uses, warnings, unread
    for entry in entries:
        if entry in skip:
            continue
        directory = os.path.join(instances_path, entry)
        st = os.lstat(directory)
        if stat.S_ISLNK(st.st_mode):
            warnings.append(f'{directory} is a symbolic link: not followed')
            unread.append(directory)
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        names, error = _disk_names(directory)
        if error is not None:
            warnings.append(f'{directory} cannot be read: {error.strerror}')
            unread.append(directory)
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                _, backing = qcow2.backing_name(path)
            except qcow2.Corrupt as e:
                warnings.append(f'{path}: corrupt qcow2 header ({e})')
                unread.append(path)
                continue
            except safefs.UnsafePath as e:
                warnings.append(f'{path} not read: {e}')
                unread.append(path)
                continue
            except OSError as e:
                warnings.append(f'{path} cannot be read: {e.strerror}')
                unread.append(path)
                continue
            if backing:
                uses.setdefault(backing, []).append((entry, name))
    return uses, warnings, unread
