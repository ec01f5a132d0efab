"""Where image bytes come from: a local file, an HTTP(S) URL or Glance.

:func:`open_image` turns a reference into an :class:`~base.ImageSource`.
"""

import os
import urllib.parse
import urllib.request

from oslo_utils import uuidutils

from imagepipe import exception
from imagepipe.sources import credentials
from imagepipe.sources.file import LocalFile
from imagepipe.sources.http import HttpImage

GLANCE_SCHEME = 'glance://'


def open_image(ref, glance=None):
    """The source ``ref`` names.

    ``ref`` is a local path, a ``file://``, ``http://`` or ``https://`` URL,
    ``glance://<id>``, or a bare image id when ``glance`` (``{"api_servers":
    [...], ...}``) is given. The dict's ``download_retries`` applies to
    HTTP(S) downloads too.
    """
    try:
        scheme = urllib.parse.urlsplit(ref).scheme
    except ValueError as e:
        raise exception.SourceError(
            f'{credentials.shown(ref)}: {e}') from None
    if scheme in ('http', 'https'):
        return HttpImage(ref, glance)
    if scheme == 'file':
        return LocalFile(ref, urllib.request.url2pathname(
            urllib.parse.urlsplit(ref).path))
    if ref.startswith(GLANCE_SCHEME) or (
            glance and uuidutils.is_uuid_like(ref)):
        if not glance:
            raise exception.SourceError(
                f'{ref}: a Glance image needs Glance api_servers')
        # keystoneauth1 and requests are imported for Glance images only
        from imagepipe.sources.glance import GlanceImage
        return GlanceImage(ref, ref.removeprefix(GLANCE_SCHEME), glance)
    if scheme and not os.path.isabs(ref):
        raise exception.SourceError(f'{ref}: unsupported image reference')
    return LocalFile(ref, ref)
