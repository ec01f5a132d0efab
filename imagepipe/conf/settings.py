"""The effective settings of one release: a JSON snapshot for the factory.

Flow factories must not read global configuration (taskflow calls them again
on resume, maybe after the files changed), so everything a factory needs is
resolved here once, into plain JSON stored with the run.
"""

import os

from imagepipe import exception
from imagepipe.conf import options


def effective_images_type(images_type, use_cow_images):
    """raw, qcow2, lvm (or rbd, ploop): what backend the release's Nova used.

    ``images_type`` is None for Essex, which had no such option:
    use_cow_images alone chose an overlay (qcow2) or a copy (raw). ``flat``
    is Newton's name of the Raw backend (renamed Flat): the same full copy,
    so it is ``raw`` here.
    """
    if images_type in (None, 'default'):
        return 'qcow2' if use_cow_images else 'raw'
    if images_type == 'flat':
        return 'raw'
    return images_type


def glance_endpoints(values):
    """Glance API base URLs in the order Nova tried them.

    Empty when the release has no host and port options (modern Nova) and no
    api_servers are set: Glance is then found in the Keystone catalog.
    """
    servers = values.get('glance_api_servers')
    protocol = values.get('glance_protocol') or 'http'
    if not servers:
        if values.get('glance_host') is None:
            return []
        servers = [f"{values['glance_host']}:{values['glance_port']}"]
    return [s if '://' in s else f'{protocol}://{s}' for s in servers]


def _require_directory(rconf, values, key):
    """An empty path option would mean the current directory (or ``/``
    once joined): refused."""
    if not (values[key] or '').strip():
        raise exception.ConfigError(
            f'{key} is empty ({rconf.source(key)}): it must name a '
            'directory')


def snapshot(rconf):
    """JSON settings of ``rconf`` (a loader.ReleaseConfig)."""
    values = {o.key: None for o in options.OPTIONS}
    for opt in rconf.options:
        values[opt.key] = rconf.value(opt.key)
    for key in ('state_path', 'instances_path'):
        _require_directory(rconf, values, key)
    own = rconf.conf.imagepipe
    values.update(
        release=rconf.release,
        instances_path=os.path.abspath(values['instances_path']),
        images_type_effective=effective_images_type(
            values['images_type'], values['use_cow_images']),
        glance_endpoints=glance_endpoints(values),
        connection=own.connection,
        download_retries=own.download_retries,
    )
    if (values['images_type_effective'] == 'lvm'
            and not values['images_volume_group']):
        raise exception.ConfigError(
            'images_type is lvm but no images_volume_group is set: Nova '
            'refused to start the LVM backend without one')
    return values
