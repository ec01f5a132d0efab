"""The request every flow is built for: image, instance and flavor sizes."""

import os
import urllib.parse
import urllib.request

from oslo_utils import uuidutils

from imagepipe import exception
from imagepipe.sources import credentials

#: What ``--image`` may be.
IMAGE_HELP = ('Glance image id, glance://ID, http(s) URL, file:// URL or '
              'local path')


def add_arguments(parser):
    parser.add_argument('--image', required=True, metavar='REF',
                        help=IMAGE_HELP)
    parser.add_argument('--instance', required=True, metavar='NAME',
                        help='instance name (its directory under '
                             'instances_path)')
    parser.add_argument('--root-gb', type=int, default=1, metavar='N',
                        help="flavor's root disk in GiB; 0 keeps the image's "
                             'size (default: %(default)s)')
    parser.add_argument('--ephemeral-gb', type=int, default=0, metavar='N',
                        help='ephemeral disk in GiB (default: none)')
    parser.add_argument('--swap-mb', type=int, default=0, metavar='N',
                        help='swap disk in MiB (default: none)')


def from_args(args):
    """The JSON request, checked."""
    for name in ('root_gb', 'ephemeral_gb', 'swap_mb'):
        if getattr(args, name) < 0:
            raise exception.ConfigError(
                f'--{name.replace("_", "-")} must not be negative')
    if '/' in args.instance or args.instance in ('', '.', '..', 'locks'):
        raise exception.ConfigError(
            f'invalid instance name {args.instance!r}: it names a directory '
            'under instances_path')
    return {'image': image_ref(args.image), 'instance': args.instance,
            'root_gb': args.root_gb, 'ephemeral_gb': args.ephemeral_gb,
            'swap_mb': args.swap_mb}


def image_ref(ref):
    """``--image`` as the run stores it, and its cache key is made from.

    A local path or ``file://`` URL becomes the file's absolute real path
    (the same file has one key, whatever directory or link it was named
    from); an http(s) URL loses the credentials it carries (this process
    keeps them in memory); a URL that does not parse is refused.
    """
    try:
        parts = urllib.parse.urlsplit(ref)
        parts.port  # noqa: B018 - parsing the port raises on a bad one
    except ValueError as e:
        raise exception.ConfigError(
            f'--image {credentials.shown(ref)!r}: {e}') from None
    scheme = parts.scheme.lower()
    if scheme in ('http', 'https'):
        if not parts.hostname:
            raise exception.ConfigError(
                f'--image {credentials.shown(ref)!r}: the URL names no host')
        return credentials.keep(ref)
    if scheme == 'file':
        if parts.netloc not in ('', 'localhost'):
            raise exception.ConfigError(
                f'--image {ref!r}: a file:// URL names a file of this host')
        return os.path.realpath(urllib.request.url2pathname(parts.path))
    if scheme == 'glance' or (not scheme and uuidutils.is_uuid_like(ref)):
        return ref
    if scheme and not os.path.isabs(ref):
        raise exception.ConfigError(
            f'--image {ref!r}: unsupported scheme {parts.scheme!r} (a '
            f'{IMAGE_HELP})')
    return os.path.realpath(ref)
