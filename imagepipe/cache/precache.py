"""The flow of a pre-cache: touch an existing base, else the boot's fetch.

Nova 21.0.0+ (nova/virt/libvirt/driver.py@33.0.2 cache_image) gave an
existing base a fresh mtime ("existing") and fetched a missing one with
fetch_to_raw, honouring force_raw_images ("cached"). Here the first step,
``precache-touch``, touches the base if it is there and records whether
it was; then come the steps of :func:`imagepipe.flows.intake.steps`, which
find that base and do nothing, or fetch it. All of them hold the fetch lock
a boot takes (``$hex``) from the touch on, so a cache pass never sees half
of it. The status is read from the stored run (:func:`status`), so a
pre-cache run by a host's conductor and one run in-process say the same.
"""

import os

from taskflow.patterns import linear_flow

from imagepipe import flows
from imagepipe.flows import intake
from imagepipe.flows import steps
from imagepipe.tasks import safefs
from imagepipe.tasks.contract import ImageTask

OPERATION = 'precache'

#: the Build needs an instance name; the fetch section makes nothing in
#: an instance directory
NO_INSTANCE = 'precache'

#: the first step's name: its result says whether the base was there
TOUCH = 'precache-touch'


class TouchExisting(ImageTask):
    """An existing base gets a fresh mtime; result: ``existing``."""

    source = 'LibvirtDriver.cache_image'

    def work(self, base):
        try:
            fd = safefs.open_existing(base)
        except FileNotFoundError:
            return {'existing': False, 'base': base}
        try:
            os.utime(fd)
        finally:
            os.close(fd)
        return {'existing': True, 'base': base}

    def preview(self, base, **args):
        return {
            'command': None,
            'notes': [
                f'{base}: its mtime set to now if it exists (in-process '
                'utime); the fetch steps then find it and do nothing',
                'not as Nova (nova/virt/libvirt/driver.py@33.0.2 '
                'cache_image): under the fetch lock a boot takes, so a '
                'concurrent boot or cache pass sees the whole base or none',
            ],
        }


def build(release, settings, request):
    """taskflow factory of a pre-cache (``flows.factory`` dispatches here)."""
    build = steps.Build(flows.get(release), settings,
                        {**request, 'instance': NO_INSTANCE})
    touch = steps.Step(TouchExisting, TOUCH, {'base': build.paths.base})
    flow = linear_flow.Flow(f'{release}-{OPERATION}')
    flow.add(touch.task(build.lock(build.paths.hex, last=False)),
             *intake.steps(build))
    return flow


def status(fd):
    """(status, error) of the stored pre-cache run ``fd``: ``existing``,
    ``cached`` or ``error``; None while it has not finished."""
    meta = fd.meta.get('imagepipe', {})
    if fd.state == 'SUCCESS':
        touched = next((ad.results for ad in fd if ad.name == TOUCH), None)
        existing = isinstance(touched, dict) and touched.get('existing')
        return ('existing' if existing else 'cached'), None
    if fd.state in ('REVERTED', 'FAILURE'):
        return 'error', meta.get('error') or f'the run ended {fd.state}'
    return None, None
