"""Where Nova put each file, from the settings snapshot and the request.

Names that become one directory under instances_path (the instance, the
image cache) are checked here, where the paths are made, so that ``plan``,
``run`` and a resume refuse them alike.
"""

import hashlib
import os

from imagepipe import exception

GiB = 1024 ** 3

#: bytes in one file name (Linux NAME_MAX)
NAME_MAX = 255

#: the directory of Nova's lock files under instances_path
LOCKS = 'locks'


def image_hex(image_ref):
    """Cache file name of a root image: SHA1 of the image reference."""
    return hashlib.sha1(image_ref.encode('utf-8')).hexdigest()


def _why_not_a_name(name):
    if name in ('', '.', '..'):
        return 'is not a directory name'
    if '/' in name or '\0' in name:
        return 'contains "/" or NUL'
    if len(os.fsencode(name)) > NAME_MAX:
        return f'is longer than {NAME_MAX} bytes'
    return None


def component(name, what):
    """``name`` if it is one plain directory name; ConfigError if not."""
    why = _why_not_a_name(name)
    if why:
        raise exception.ConfigError(
            f'{what} {name!r} {why}: it must name one directory under '
            'instances_path')
    return name


class Paths:
    """The files of one request, as one release named them."""

    def __init__(self, settings, request, base_dir_name):
        self.instances = settings['instances_path']
        component(base_dir_name, 'image_cache_subdirectory_name')
        if base_dir_name == LOCKS:
            raise exception.ConfigError(
                f'image_cache_subdirectory_name {base_dir_name!r} is where '
                'the lock files go: choose another name')
        instance = component(request['instance'], 'instance name')
        if instance in (base_dir_name, LOCKS):
            raise exception.ConfigError(
                f'instance name {instance!r} is the image cache or lock '
                'directory under instances_path: choose another name')
        self.base_dir = os.path.join(self.instances, base_dir_name)
        self.locks = os.path.join(self.instances, LOCKS)
        self.hex = image_hex(request['image'])
        self.base = os.path.join(self.base_dir, self.hex)
        self.instance_dir = os.path.join(self.instances, instance)

    def cache(self, name):
        return os.path.join(self.base_dir, name)

    def disk(self, name='disk'):
        return os.path.join(self.instance_dir, name)

    def resized_base(self, size):
        """Essex/Folsom resized copy of the base: ``<hex>_<GiB>``."""
        return f'{self.base}_{size // GiB}'
