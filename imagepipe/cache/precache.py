"""The flow of a pre-cache: the boot's own fetch section, nothing else.

Nova 21.0.0+ (nova/virt/libvirt/driver.py@33.0.2 cache_image) fetched a
missing base with fetch_to_raw, honouring force_raw_images; the steps here
are :func:`imagepipe.flows.intake.steps`, under the fetch lock a boot
takes (``$hex``).
"""

from taskflow.patterns import linear_flow

from imagepipe import flows
from imagepipe.flows import intake
from imagepipe.flows import steps

OPERATION = 'precache'

#: the Build needs an instance name; the fetch section makes nothing in
#: an instance directory
NO_INSTANCE = 'precache'


def build(release, settings, request):
    """taskflow factory of a pre-cache (``flows.factory`` dispatches here)."""
    build = steps.Build(flows.get(release), settings,
                        {**request, 'instance': NO_INSTANCE})
    flow = linear_flow.Flow(f'{release}-{OPERATION}')
    flow.add(*intake.steps(build))
    return flow
