"""The request every flow is built for: image, instance and flavor sizes."""

from imagepipe import exception


def add_arguments(parser):
    parser.add_argument('--image', required=True, metavar='REF',
                        help='Glance image id, glance://ID, http(s) URL, '
                             'file:// URL or local path')
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
    return {'image': args.image, 'instance': args.instance,
            'root_gb': args.root_gb, 'ephemeral_gb': args.ephemeral_gb,
            'swap_mb': args.swap_mb}
