"""An image in Glance, read through the v2 API.

Only two calls: ``GET /v2/images/{id}`` for the metadata (status, disk_format,
size, hashes) and ``GET /v2/images/{id}/file`` for the data, which Glance
serves with Range support. Each call tries the API servers in turn while they
cannot be reached; an HTTP error answer is final.
"""

import json

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import http


class GlanceImage(base.ImageSource):
    supports_range = True

    def __init__(self, ref, image_id, glance):
        super().__init__(ref)
        self.image_id = image_id
        self.servers = [s.rstrip('/') for s in glance.get('api_servers') or ()]
        if not self.servers:
            raise exception.SourceError(f'{ref}: no Glance api_servers given')
        token = glance.get('token')
        self.headers = {'X-Auth-Token': token} if token else {}
        self._describe(self._get(f'/v2/images/{image_id}'))

    def read(self, offset=0):
        path = f'/v2/images/{self.image_id}/file'
        return http.stream(self.ref, self._get(path, offset), offset)

    def _get(self, path, offset=0):
        unreachable = []
        for server in self.servers:
            try:
                return http.open_url(server + path, self.headers, offset)
            except base.Unreachable as e:
                unreachable.append(str(e))
        raise exception.SourceError(
            f'{self.ref}: no Glance API server reachable '
            f'({"; ".join(unreachable)})')

    def _describe(self, response):
        """Take size, checksum and disk_format from the image's metadata."""
        with response:
            try:
                meta = json.load(response)
            except ValueError:
                raise exception.SourceError(
                    f'{self.ref}: Glance answered with invalid JSON') from None
        if meta.get('status') != 'active':
            raise exception.SourceError(
                f'{self.ref}: image is {meta.get("status")}, not active')
        self.size = meta.get('size')
        self.disk_format = meta.get('disk_format')
        if meta.get('os_hash_algo') and meta.get('os_hash_value'):
            self.checksum = (meta['os_hash_algo'], meta['os_hash_value'])
        elif meta.get('checksum'):
            self.checksum = ('md5', meta['checksum'])
