"""An instance's logical volumes, cleared and removed as its destroy did.

nova/virt/libvirt/driver.py@2012.2.4 .. @33.0.2 (_cleanup_lvm, _lvm_disks):
when ``/dev/<vg>`` exists, ``lvs --noheadings -o lv_name <vg>`` lists the
group's volumes; those of the instance are cleared one by one, then removed
with ``lvremove -f``. Folsom .. Icehouse looked whenever the volume group
option was set; Juno on only when images_type is lvm.

Clearing: 2012.2.2 .. Havana zeroed each whole volume
(nova/virt/libvirt/utils.py@2013.1.5 clear_logical_volume, LP#1070539);
Icehouse on follows volume_clear and volume_clear_size
(nova/virt/libvirt/utils.py@2014.1.5 clear_logical_volume). Both use the
clearing the LVM steps' revert uses (:func:`imagepipe.tasks.lvm.clear`).

Which volumes are the instance's: imagepipe names them ``<instance>_<disk>``
with each ``_`` inside a part doubled (:func:`imagepipe.flows.root_lvm.
lv_name`); a volume is the instance's when its instance part is exactly the
name. Nova's prefix match (``<name>_``) also took the volumes of an instance
whose name starts with it (doc/source/cache.rst).
"""

import os
import re

from imagepipe import flows
from imagepipe import tools
from imagepipe.tasks import lvm

#: where the volume groups' device directories are (tests point it elsewhere)
DEV = '/dev'
#: from Juno on the destroy looked at LVM only when images_type was lvm
#: (nova/virt/libvirt/driver.py@2014.2.4 cleanup)
LVM_TYPE_ONLY_SINCE = flows.get('juno').date

#: ``<instance>_<disk>``, each ``_`` inside a part doubled
_LV = re.compile(r'((?:[^_]|__)+)_((?:[^_]|__)*)')


def list_argv(vg):
    return ['lvs', '--noheadings', '-o', 'lv_name', vg]


def owner(lv):
    """The instance name an LV name holds, None for names not imagepipe's."""
    match = _LV.fullmatch(lv)
    return match.group(1).replace('__', '_') if match else None


def volume_group(release, settings):
    """The volume group the release's destroy looked in, or None."""
    vg = settings.get('images_volume_group')
    traits = flows.get(release)
    if not vg or 'lvm' not in traits.traits.backends:
        return None
    if (traits.date >= LVM_TYPE_ONLY_SINCE
            and settings.get('images_type_effective') != 'lvm'):
        return None
    return vg


def clearing(release, settings):
    """(volume_clear, volume_clear_size) of the release: zero, whole, before
    the options existed."""
    if flows.get(release).traits.volume_clear_option:
        return settings['volume_clear'], settings['volume_clear_size']
    return 'zero', 0


def of_instance(release, settings, instance):
    """Device paths of the instance's LVs the release's destroy removed:
    none without ``/dev/<vg>``."""
    vg = volume_group(release, settings)
    if vg is None:
        return []
    group = os.path.join(DEV, vg)
    if not os.path.isdir(group):
        return []
    _, out, _ = tools.run(*list_argv(vg))
    names = sorted(line.strip() for line in out.splitlines())
    return [os.path.join(group, n) for n in names if owner(n) == instance]


def destroy(release, settings, paths):
    """The LVs at ``paths`` (:func:`of_instance`) each cleared, then
    removed."""
    how, size = clearing(release, settings)
    for path in paths:
        lvm.clear(path, how, size)
    if paths:
        tools.run('lvremove', '-f', *paths)
