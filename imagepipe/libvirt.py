"""The libvirt ``<disk>`` element a release's Nova wrote for the root disk.

Pure functions of a finished run's JSON: its factory arguments
(``{release, settings, request}``, see :mod:`imagepipe.runner.driver`) and the
results of its steps (``{step name: result}``). Nothing is probed here: what
Nova learned from ``qemu-img info`` at boot is what the run's steps recorded.

The driver type (the format libvirt tells QEMU to read the disk as) is where
the releases differ (each row cites the Nova code it follows):

=========  ============================================================
essex      ``use_cow_images``: qcow2 if set, else raw, whatever the file
           holds (nova/virt/libvirt/connection.py@2012.1.3, to_xml)
folsom     the backend: Qcow2 -> qcow2, Raw -> raw; a qcow2 copy made with
           force_raw_images=False is announced as raw and does not boot
           (nova/virt/libvirt/driver.py@2012.2.4; LP#1163009)
grizzly    Qcow2 -> qcow2; Raw: the format qemu-img detects in the disk,
           as every point release from 2013.1.1 to the final 2013.1.5 did
           (nova/virt/libvirt/imagebackend.py@2013.1.5, Raw.correct_format,
           LP#1163009; no disk.info on that branch up to 2013.1.5)
havana+    the format recorded in ``disk.info`` (Havana 2013.2.3+,
           Icehouse, Juno; nova/virt/libvirt/imagebackend.py@2013.2.4,
           Image.resolve_driver_format): qcow2 for Qcow2, the detected
           format for Raw
lvm        every release with LVM (folsom+): a block device, driver raw
           (nova/virt/libvirt/imagebackend.py@2012.2.4, Lvm)
=========  ============================================================

The disk is always ``vda`` on the virtio bus, as the libvirt driver chose
for a KVM/QEMU guest without image properties.
"""

import xml.etree.ElementTree as ET

from imagepipe import exception

#: where the step results say the root disk is, per backend
DISK_STEP = {'qcow2': 'root-overlay', 'raw': 'root-copy',
             'lvm': 'root-create-volume'}

TARGET_DEV = 'vda'
TARGET_BUS = 'virtio'

#: the test guest's kernel command line (its initramfs ignores root=)
CMDLINE = 'root=/dev/vda console=ttyS0 panic=-1'


def results_of(steps):
    """``{step: result}`` from ``show``/``run`` JSON step rows or a mapping.

    Only steps that succeeded count; a row without a result is left out.
    """
    if isinstance(steps, dict):
        return {k: v for k, v in steps.items() if v is not None}
    return {row['step']: row['result'] for row in steps
            if row.get('state', 'SUCCESS') == 'SUCCESS'
            and row.get('result') is not None}


def for_run(flow_detail):
    """``(run_kwargs, results)`` of a stored run (a taskflow flow detail)."""
    results = {ad.name: ad.results for ad in flow_detail
               if ad.state == 'SUCCESS' and ad.results is not None}
    return flow_detail.meta['factory']['kwargs'], results


def _result(results, step, release):
    try:
        return results[step]
    except KeyError:
        raise exception.RunError(
            f'the {release} run has no result for step {step}: the root '
            'disk was not made (is the run finished?)') from None


def _made_format(results, release):
    """The format of the copied disk, as qemu-img would detect it.

    ``cp`` keeps the base's format and ``qemu-img resize`` keeps the disk's.
    """
    if 'root-resize' in results:
        return results['root-resize']['format']
    return _result(results, 'root-publish', release)['format']


def driver_type(run_kwargs, results):
    """``(type, why)``: the ``<driver type>`` of the release's root disk."""
    release = run_kwargs['release']
    settings = run_kwargs['settings']
    backend = settings['images_type_effective']
    results = results_of(results)
    if backend == 'lvm':
        return 'raw', ('Lvm backend: a block device, always raw '
                       '(nova/virt/libvirt/imagebackend.py@2012.2.4)')
    if release == 'essex':
        cow = settings['use_cow_images']
        return (('qcow2' if cow else 'raw'),
                f'essex: use_cow_images={cow} decides, whatever the file '
                'holds (nova/virt/libvirt/connection.py@2012.1.3)')
    if release == 'folsom':
        return backend, (f'folsom: the {backend.capitalize()} backend '
                         'fixes it (nova/virt/libvirt/driver.py@2012.2.4, '
                         'LP#1163009)')
    if release == 'grizzly':
        if backend == 'qcow2':
            return 'qcow2', ('grizzly: the Qcow2 backend fixes it '
                             '(nova/virt/libvirt/imagebackend.py@2013.1.5)')
        return (_made_format(results, release),
                'grizzly 2013.1.1+: the Raw backend probes the disk '
                '(nova/virt/libvirt/imagebackend.py@2013.1.5, '
                'Raw.correct_format, LP#1163009)')
    if 'root-disk-info' in results:
        return (results['root-disk-info']['format'],
                f'{release}: the format recorded in disk.info '
                '(nova/virt/libvirt/imagebackend.py@2013.2.4, LP#1221190)')
    raise exception.NotSupported(
        f'no libvirt driver type rule for a {release} run with the '
        f'{backend} backend and no disk.info step')


def root_disk(run_kwargs, results):
    """What the ``<disk>`` element says, as a dict (also for the plan)."""
    release = run_kwargs['release']
    backend = run_kwargs['settings']['images_type_effective']
    results = results_of(results)
    step = DISK_STEP.get(backend)
    if step is None:
        raise exception.NotSupported(
            f'no libvirt disk for the {backend} backend')
    made = _result(results, step, release)
    fmt, why = driver_type(run_kwargs, results)
    if backend == 'lvm':
        kind, source = 'block', made['device']
    else:
        kind, source = 'file', made['path']
    return {'type': kind, 'source': source, 'driver_name': 'qemu',
            'driver_type': fmt, 'target_dev': TARGET_DEV,
            'target_bus': TARGET_BUS, 'why': why}


def disk_element(run_kwargs, results):
    """The root ``<disk>`` as an ElementTree element."""
    d = root_disk(run_kwargs, results)
    disk = ET.Element('disk', type=d['type'], device='disk')
    ET.SubElement(disk, 'driver', name=d['driver_name'],
                  type=d['driver_type'])
    source_attr = 'dev' if d['type'] == 'block' else 'file'
    ET.SubElement(disk, 'source', {source_attr: d['source']})
    ET.SubElement(disk, 'target', dev=d['target_dev'], bus=d['target_bus'])
    return disk


def _text(element):
    ET.indent(element, space='  ')
    return ET.tostring(element, encoding='unicode') + '\n'


def disk_xml(run_kwargs, results):
    """The root ``<disk>`` element the run's release would have written."""
    return _text(disk_element(run_kwargs, results))


def domain_name(run_kwargs):
    return f"imagepipe-{run_kwargs['request']['instance']}"


def domain_element(run_kwargs, results, kernel, initrd, console, name=None,
                   memory_mib=256, cmdline=CMDLINE):
    """A minimal domain around the root disk.

    QEMU's TCG (``type='qemu'``: KVM may be missing or unusable), direct
    kernel boot, the serial console written to ``console``, ACPI (without it
    libvirt adds ``-no-acpi`` and a guest's power-off only halts it), no
    network, and every way out of the guest ends the domain.
    """
    dom = ET.Element('domain', type='qemu')
    ET.SubElement(dom, 'name').text = name or domain_name(run_kwargs)
    ET.SubElement(dom, 'memory', unit='MiB').text = str(memory_mib)
    ET.SubElement(dom, 'vcpu').text = '1'
    os_ = ET.SubElement(dom, 'os')
    ET.SubElement(os_, 'type', arch='x86_64', machine='pc').text = 'hvm'
    ET.SubElement(os_, 'kernel').text = kernel
    ET.SubElement(os_, 'initrd').text = initrd
    ET.SubElement(os_, 'cmdline').text = cmdline
    features = ET.SubElement(dom, 'features')
    ET.SubElement(features, 'acpi')
    for event in ('on_poweroff', 'on_reboot', 'on_crash'):
        ET.SubElement(dom, event).text = 'destroy'
    devices = ET.SubElement(dom, 'devices')
    devices.append(disk_element(run_kwargs, results))
    serial = ET.SubElement(devices, 'serial', type='file')
    ET.SubElement(serial, 'source', path=console)
    ET.SubElement(serial, 'target', port='0')
    ET.SubElement(devices, 'memballoon', model='none')
    return dom


def domain_xml(run_kwargs, results, kernel, initrd, console, **kwargs):
    """A bootable domain (see :func:`domain_element`) as XML text."""
    return _text(domain_element(run_kwargs, results, kernel, initrd, console,
                                **kwargs))
