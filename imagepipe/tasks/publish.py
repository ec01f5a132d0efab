"""Publish: move the finished image to ``$B/$hex``, ending the locked section.

Nova renamed ``.converted`` (or ``.part`` when no conversion happened) to the
cache file name; a cache entry, once there, is never rolled back.
"""

import os

from imagepipe import exception
from imagepipe.tasks import safefs
from imagepipe.tasks.contract import ImageTask


class Publish(ImageTask):
    """Rename the image into the cache; result names the cached file."""

    source = 'images.fetch_to_raw'

    def work(self, image, base):
        path = image['path']
        if path != base:
            if safefs.existing_file(path, 'publish it'):
                safefs.publish(path, base)
            elif not safefs.existing_file(
                    base, 'use it as the cached image'):
                raise exception.RunError(
                    f'cannot publish {path}: neither it nor {base} '
                    'exists')
        return {'path': base, 'format': image['format']}

    def preview(self, image, base, **args):
        return {
            'command': None,
            'creates': [base],
            'removes': [image['path']],
            'notes': [f'mv {os.path.basename(image["path"])} '
                      f'{os.path.basename(base)} (in-process rename, '
                      'then the directory is flushed); nothing to do when '
                      'the image came from the cache'],
        }
