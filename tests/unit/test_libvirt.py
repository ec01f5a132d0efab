"""The libvirt <disk> and domain of a run, per release (ref. 1.1, 3)."""

import hashlib
import json
import xml.etree.ElementTree as ET

import pytest

from imagepipe import exception
from imagepipe import flows
from imagepipe import libvirt
from imagepipe.cmd import plan as plan_cmd
from imagepipe.conf import loader
from imagepipe.conf import settings as conf_settings

INSTANCES = '/var/lib/nova/instances'
BASE = f'{INSTANCES}/_base/0123abcd'
DISK = f'{INSTANCES}/vm1/disk'


def kwargs(release, backend, use_cow=None, force_raw=True, instance='vm1'):
    if use_cow is None:
        use_cow = backend != 'raw'
    return {'release': release,
            'settings': {'images_type_effective': backend,
                         'use_cow_images': use_cow,
                         'force_raw_images': force_raw,
                         'instances_path': INSTANCES},
            'request': {'image': 'img', 'instance': instance,
                        'root_gb': 1}}


def overlay(base_format='raw', disk_info=None):
    results = {'root-publish': {'path': BASE, 'format': base_format},
               'root-overlay': {'path': DISK, 'backing_file': BASE,
                                'backing_format': base_format,
                                'virtual_size': 1 << 30},
               'root-resize': {'resized': True, 'format': 'qcow2',
                               'virtual_size': 1 << 30,
                               'virtual_size_before': 16 << 20}}
    if disk_info:
        results['root-disk-info'] = {'disk': DISK, 'format': disk_info}
    return results


def copy(base_format='raw', disk_info=None, resized=True):
    results = {'root-publish': {'path': BASE, 'format': base_format},
               'root-copy': {'path': DISK, 'copied': True,
                             'size': 16 << 20}}
    if resized:
        results['root-resize'] = {'resized': True, 'format': base_format,
                                  'virtual_size': 1 << 30,
                                  'virtual_size_before': 16 << 20}
    if disk_info:
        results['root-disk-info'] = {'disk': DISK, 'format': disk_info}
    return results


def lvm_results():
    return {'root-publish': {'path': BASE, 'format': 'qcow2'},
            'root-create-volume': {'device': '/dev/vg/vm1_disk',
                                   'size': 1 << 30, 'resized': True,
                                   'created': True}}


def parse(text):
    return ET.fromstring(text)


@pytest.mark.parametrize('release, backend, use_cow, results, expected', [
    # Essex: use_cow_images alone, whatever the file is (ref. 1.1, 3.1)
    ('essex', 'qcow2', True, overlay('raw'), 'qcow2'),
    ('essex', 'qcow2', True, overlay('qcow2'), 'qcow2'),
    ('essex', 'raw', False, copy('raw'), 'raw'),
    ('essex', 'raw', False, copy('qcow2'), 'raw'),          # unbootable
    # Folsom: the backend (ref. 3.2), LP#1163009 unfixed
    ('folsom', 'qcow2', True, overlay('raw'), 'qcow2'),
    ('folsom', 'qcow2', True, overlay('qcow2'), 'qcow2'),
    ('folsom', 'raw', False, copy('raw'), 'raw'),
    ('folsom', 'raw', False, copy('qcow2'), 'raw'),         # unbootable
    ('folsom', 'raw', True, copy('qcow2'), 'raw'),          # images_type=raw
    # Grizzly 2013.1.5: Qcow2 fixed, Raw probes the disk (ref. 3.3)
    ('grizzly', 'qcow2', True, overlay('raw'), 'qcow2'),
    ('grizzly', 'raw', False, copy('raw'), 'raw'),
    ('grizzly', 'raw', False, copy('qcow2'), 'qcow2'),
    ('grizzly', 'raw', False, copy('qcow2', resized=False), 'qcow2'),
    # Havana+: disk.info (ref. 3.4, 3.5)
    ('havana', 'qcow2', True, overlay('raw', 'qcow2'), 'qcow2'),
    ('havana', 'raw', False, copy('qcow2', 'qcow2'), 'qcow2'),
    ('icehouse', 'raw', False, copy('raw', 'raw'), 'raw'),
    ('juno', 'qcow2', True, overlay('qcow2', 'qcow2'), 'qcow2'),
    ('juno', 'raw', False, copy('qcow2', 'qcow2'), 'qcow2'),
])
def test_driver_type_per_release(release, backend, use_cow, results,
                                 expected):
    kw = kwargs(release, backend, use_cow)
    fmt, why = libvirt.driver_type(kw, results)
    assert fmt == expected
    assert release in why
    disk = parse(libvirt.disk_xml(kw, results))
    assert disk.find('driver').attrib == {'name': 'qemu', 'type': expected}


def test_disk_info_wins_over_the_file():
    """Havana+ trust disk.info, not what the disk looks like now."""
    kw = kwargs('icehouse', 'raw')
    assert libvirt.driver_type(kw, copy('qcow2', 'raw'))[0] == 'raw'


def test_file_disk_element():
    kw = kwargs('folsom', 'qcow2')
    text = libvirt.disk_xml(kw, overlay())
    disk = parse(text)
    assert disk.tag == 'disk'
    assert disk.attrib == {'type': 'file', 'device': 'disk'}
    assert [c.tag for c in disk] == ['driver', 'source', 'target']
    assert disk.find('source').attrib == {'file': DISK}
    assert disk.find('target').attrib == {'dev': 'vda', 'bus': 'virtio'}
    assert text.endswith('</disk>\n')


@pytest.mark.parametrize('release', ['folsom', 'grizzly', 'havana',
                                     'icehouse', 'juno'])
def test_lvm_is_a_raw_block_device(release):
    kw = kwargs(release, 'lvm')
    disk = parse(libvirt.disk_xml(kw, lvm_results()))
    assert disk.attrib == {'type': 'block', 'device': 'disk'}
    assert disk.find('driver').attrib == {'name': 'qemu', 'type': 'raw'}
    assert disk.find('source').attrib == {'dev': '/dev/vg/vm1_disk'}


def test_root_disk_says_why():
    d = libvirt.root_disk(kwargs('folsom', 'raw'), copy('qcow2'))
    assert d == {'type': 'file', 'source': DISK, 'driver_name': 'qemu',
                 'driver_type': 'raw', 'target_dev': 'vda',
                 'target_bus': 'virtio', 'why': d['why']}
    assert 'LP#1163009' in d['why']


def test_an_unfinished_run_has_no_disk():
    results = copy()
    del results['root-copy']
    with pytest.raises(exception.RunError, match='root-copy'):
        libvirt.disk_xml(kwargs('folsom', 'raw'), results)


def test_later_releases_need_disk_info():
    with pytest.raises(exception.NotSupported, match='disk.info'):
        libvirt.driver_type(kwargs('havana', 'raw'), copy())


def test_unknown_backend():
    with pytest.raises(exception.NotSupported, match='rbd'):
        libvirt.disk_xml(kwargs('havana', 'rbd'), copy())


def test_results_from_step_rows():
    """The ``steps`` of ``run``/``show --format json`` work as results."""
    rows = [{'step': 'root-publish', 'state': 'SUCCESS',
             'result': {'path': BASE, 'format': 'raw'}},
            {'step': 'root-copy', 'state': 'SUCCESS',
             'result': {'path': DISK}},
            {'step': 'root-resize', 'state': 'PENDING'},
            {'step': 'root-resize-fs', 'state': 'REVERTED', 'result': None}]
    results = libvirt.results_of(rows)
    assert results == {'root-publish': {'path': BASE, 'format': 'raw'},
                       'root-copy': {'path': DISK}}
    assert parse(libvirt.disk_xml(kwargs('grizzly', 'raw'), rows)).find(
        'driver').get('type') == 'raw'


def test_only_json_goes_in():
    """A run read back from JSON gives the same XML."""
    kw, results = kwargs('juno', 'qcow2'), overlay('raw', 'qcow2')
    again = json.loads(json.dumps([kw, results]))
    assert libvirt.disk_xml(*again) == libvirt.disk_xml(kw, results)


class AtomDetail:
    def __init__(self, name, state, results):
        self.name, self.state, self.results = name, state, results


class FlowDetail(list):
    meta = {}


def test_for_run_reads_a_flow_detail():
    kw = kwargs('folsom', 'raw')
    fd = FlowDetail([AtomDetail('root-publish', 'SUCCESS', {'format': 'raw'}),
                     AtomDetail('root-copy', 'SUCCESS', {'path': DISK}),
                     AtomDetail('root-resize', 'PENDING', None)])
    fd.meta = {'factory': {'kwargs': kw}}
    assert libvirt.for_run(fd) == (kw, {'root-publish': {'format': 'raw'},
                                        'root-copy': {'path': DISK}})


def test_domain():
    kw = kwargs('grizzly', 'qcow2')
    dom = parse(libvirt.domain_xml(kw, overlay(), '/g/vmlinuz',
                                   '/g/initrd.gz', '/g/console.log'))
    assert dom.get('type') == 'qemu'            # TCG: no KVM needed
    assert dom.findtext('name') == 'imagepipe-vm1'
    assert dom.find('memory').attrib == {'unit': 'MiB'}
    assert dom.findtext('memory') == '256'
    assert dom.findtext('os/kernel') == '/g/vmlinuz'
    assert dom.findtext('os/initrd') == '/g/initrd.gz'
    assert dom.findtext('os/cmdline') == libvirt.CMDLINE
    assert dom.find('os/type').text == 'hvm'
    assert dom.find('features/acpi') is not None
    for event in ('on_poweroff', 'on_reboot', 'on_crash'):
        assert dom.findtext(event) == 'destroy'
    devices = dom.find('devices')
    assert [d.tag for d in devices] == ['disk', 'serial', 'memballoon']
    assert devices.find('disk/source').get('file') == DISK
    assert devices.find('disk/driver').get('type') == 'qcow2'
    assert devices.find('serial').get('type') == 'file'
    assert devices.find('serial/source').get('path') == '/g/console.log'
    assert devices.find('interface') is None     # no network


def test_domain_options():
    dom = parse(libvirt.domain_xml(
        kwargs('juno', 'qcow2'), overlay('raw', 'qcow2'), 'k', 'i', 'c',
        name='other', memory_mib=128, cmdline='quiet'))
    assert (dom.findtext('name'), dom.findtext('memory'),
            dom.findtext('os/cmdline')) == ('other', '128', 'quiet')


@pytest.fixture
def build(tmp_path):
    """The plan of a release's real flow, its steps by name: the steps the
    rules read must exist and make the disk the domain names."""
    def build(release, root_gb=1, **options):
        path = tmp_path / 'nova.conf'
        lines = ['[DEFAULT]', f'instances_path = {tmp_path}']
        libvirt_group = ['[libvirt]']
        for key, value in options.items():
            group, _, name = key.rpartition('__')
            (libvirt_group if group == 'libvirt' else lines).append(
                f'{name} = {value}')
        path.write_text('\n'.join(lines + libvirt_group) + '\n')
        settings = conf_settings.snapshot(
            loader.load([str(path)], release=release))
        kw = {'release': release, 'settings': settings,
              'request': {'image': 'img', 'instance': 'vm1',
                          'root_gb': root_gb, 'ephemeral_gb': 0,
                          'swap_mb': 0}}
        return kw, {step['name']: step
                    for step in plan_cmd.describe(flows.factory(**kw))}
    return build


@pytest.mark.parametrize('release', ['essex', 'folsom', 'grizzly', 'havana',
                                     'icehouse', 'juno'])
@pytest.mark.parametrize('use_cow', [True, False])
@pytest.mark.parametrize('root_gb', [0, 1])
def test_rules_read_steps_the_flows_have(build, tmp_path, release, use_cow,
                                         root_gb):
    kw, steps = build(release, root_gb, use_cow_images=use_cow)
    backend = kw['settings']['images_type_effective']
    assert backend == ('qcow2' if use_cow else 'raw')
    disk = f'{tmp_path}/vm1/disk'
    assert steps[libvirt.DISK_STEP[backend]]['creates'] == [disk]
    assert steps['root-publish']['creates'] == [
        f'{tmp_path}/_base/{hashlib.sha1(b"img").hexdigest()}']
    if release in ('havana', 'icehouse', 'juno'):
        assert steps['root-disk-info']['creates'] == [f'{disk}.info']
    elif release == 'grizzly' and backend == 'raw' and root_gb:
        # the format is probed after the resize, on the disk it resized
        assert steps['root-resize']['command'][-2:] == [disk, str(1 << 30)]


@pytest.mark.parametrize('release, option', [
    ('folsom', 'libvirt_images_type'), ('juno', 'libvirt__images_type')])
def test_lvm_flows_make_a_volume(build, release, option):
    vg = ('libvirt__images_volume_group' if option.startswith('libvirt__')
          else 'libvirt_images_volume_group')
    kw, steps = build(release, **{option: 'lvm', vg: 'vg'})
    volume = steps[libvirt.DISK_STEP['lvm']]
    assert volume['creates'] == ['/dev/vg/vm1_disk']
    assert volume['command'][-1][-3:] == ['-n', 'vm1_disk', 'vg']
    disk = parse(libvirt.disk_xml(kw, lvm_results()))
    assert disk.find('source').attrib == {'dev': volume['creates'][0]}
