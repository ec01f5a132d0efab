"""A release's flow, put together from its parts.

The intake (:mod:`intake`), the root disk of the configured backend
(:mod:`root_qcow2`, :mod:`root_raw`, :mod:`root_lvm`), the generated disks
(:mod:`generated`) and a last check of every disk made, each part built
from the :class:`~imagepipe.flows.steps.Build` of the release, settings and
request.
"""

from taskflow.patterns import linear_flow

from imagepipe import exception
from imagepipe.flows import generated
from imagepipe.flows import intake
from imagepipe.flows import root_lvm
from imagepipe.flows import root_qcow2
from imagepipe.flows import root_raw
from imagepipe.flows import steps
from imagepipe.tasks import verify

ROOT_DISK = {'qcow2': root_qcow2.steps, 'raw': root_raw.steps,
             'lvm': root_lvm.steps}


def flow(release, settings, request):
    """The flow ``release``'s Nova ran for ``request``."""
    build = steps.Build(release, settings, request)
    if build.backend not in ROOT_DISK:
        # rbd, ploop: valid for Nova, refused here before anything runs
        raise exception.NotSupported(
            f'images_type {build.backend} is not supported by imagepipe')
    if build.backend not in build.traits.backends:
        raise exception.NotSupported(
            f'images_type {build.backend} is not supported by imagepipe for '
            f'{release.name}')
    made = linear_flow.Flow(f'{release.name}-{build.backend}')
    made.add(*intake.steps(build))
    made.add(*ROOT_DISK[build.backend](build))
    if request.get('ephemeral_gb'):
        made.add(*generated.steps(build, 'ephemeral',
                                  request['ephemeral_gb']))
    if request.get('swap_mb'):
        made.add(*generated.steps(build, 'swap', request['swap_mb']))
    made.add(verify.VerifyDisks('verify',
                                inject={'disks': instance_disks(build)}))
    return made


def instance_disks(build):
    """What VerifyDisks checks: each disk the flow makes for the instance."""
    raw_files = build.backend == 'raw'
    if build.backend == 'lvm':
        root = verify.disk(root_lvm.device(build), 'raw', build.size)
    else:
        root = verify.disk(build.paths.disk(),
                           build.base_format if raw_files else 'qcow2',
                           build.size)
    made = [root]
    kind = 'raw' if raw_files else 'qcow2'
    if build.request.get('ephemeral_gb'):
        made.append(verify.disk(build.paths.disk('disk.local'), kind,
                                build.request['ephemeral_gb'] * steps.GiB))
    if build.request.get('swap_mb'):
        made.append(verify.disk(build.paths.disk('disk.swap'), kind,
                                build.request['swap_mb'] * steps.MiB))
    return made


def warnings(release, settings):
    """Configurations with which ``release``'s Nova made unbootable disks."""
    backend = settings['images_type_effective']
    if settings['force_raw_images']:
        return []
    return [f'{release.name}: with force_raw_images=False and images type '
            f'{backend}, the instance disk keeps the format of the image but '
            'Nova declared it raw to libvirt: a non-raw (e.g. qcow2) image '
            f'does not boot ({bug})'
            for declared, bug in release.traits.declared_raw
            if declared == backend]
