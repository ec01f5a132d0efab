"""Where Nova put each file, from the settings snapshot and the request."""

import hashlib
import os

GiB = 1024 ** 3


def image_hex(image_ref):
    """Cache file name of a root image: SHA1 of the image reference."""
    return hashlib.sha1(image_ref.encode('utf-8')).hexdigest()


class Paths:
    """The files of one request, as one release named them."""

    def __init__(self, settings, request, base_dir_name):
        self.instances = settings['instances_path']
        self.base_dir = os.path.join(self.instances, base_dir_name)
        self.locks = os.path.join(self.instances, 'locks')
        self.hex = image_hex(request['image'])
        self.base = os.path.join(self.base_dir, self.hex)
        self.instance_dir = os.path.join(self.instances, request['instance'])

    def cache(self, name):
        return os.path.join(self.base_dir, name)

    def disk(self, name='disk'):
        return os.path.join(self.instance_dir, name)

    def resized_base(self, size):
        """Essex/Folsom resized copy of the base: ``<hex>_<GiB>``."""
        return f'{self.base}_{size // GiB}'
