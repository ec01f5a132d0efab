"""Nova's own image code in one process: the peer of benchmark case 10.

Run by the Python of a virtualenv holding nova (benchmarks/nova_peer.py
makes it), never by imagepipe's: it imports nova and the standard library
only. It sets nova's CONF (instances_path, ``[glance] api_servers``,
use_cow_images; images_type stays ``default``, so the Qcow2 backend), runs
privsep in-process (``set_client_mode(False)`` on nova's one privsep
context, as root already), and builds a ``LibvirtDriver`` without libvirt:
``__new__`` and only ``image_backend`` set, as ``__init__`` sets it. A
boot makes the instance directory and its console.log, as
``_create_image`` does first, then calls ``_create_and_inject_local_root``
(nova/virt/libvirt/driver.py@33.0.2): glanceclient's download, fetch_to_raw's
inspection and conversion and the Qcow2 overlay are all nova's. Nothing is
monkey-patched: nova runs on native threads, as nova-compute 33 does with
OS_NOVA_DISABLE_EVENTLET_PATCHING=1 (its default, eventlet, was the slower
of the two for nova in a probe here).

Protocol: one instance name a line on stdin; for each, one JSON line on
stdout: seconds taken, the instance disk and the base it should stand on.
Whether a boot is cold or warm is up to the caller, who empties
instances_path between boots or not. The first line out names the versions.
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import time
import uuid


def _configure(args):
    import nova.conf
    CONF = nova.conf.CONF
    CONF([], project='nova', default_config_files=[])
    CONF.set_override('instances_path', args.instances_path)
    CONF.set_override('use_cow_images', True)
    CONF.set_override('api_servers', [args.api_server], group='glance')
    return CONF


def _driver():
    from nova import privsep
    from nova.virt.libvirt import driver as libvirt_driver
    from nova.virt.libvirt import imagebackend
    privsep.sys_admin_pctxt.set_client_mode(False)
    drv = libvirt_driver.LibvirtDriver.__new__(libvirt_driver.LibvirtDriver)
    drv.image_backend = imagebackend.Backend(
        libvirt_driver.CONF.use_cow_images)
    return drv


def _instance(name, image, root_gb):
    from nova import objects
    from nova.compute import vm_states
    return objects.Instance(
        uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, name)), image_ref=image,
        flavor=objects.Flavor(root_gb=root_gb, ephemeral_gb=0, swap=0),
        vm_state=vm_states.BUILDING, task_state=None, config_drive='',
        launched_at=None, system_metadata={}, trusted_certs=None,
        migration_context=None, os_type=None)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='nova_peer_driver.py')
    parser.add_argument('--instances-path', required=True)
    parser.add_argument('--api-server', required=True)
    parser.add_argument('--image', required=True, help='the image id')
    parser.add_argument('--root-gb', type=int, required=True)
    args = parser.parse_args(argv)
    CONF = _configure(args)
    from nova import context as nova_context
    from nova import objects
    objects.register_all()
    drv = _driver()
    ctx = nova_context.RequestContext(user_id='bench', project_id='bench',
                                      auth_token='bench-token')
    disk_mapping = {'disk': {'bus': 'virtio', 'dev': 'vda', 'type': 'disk',
                             'boot_index': '1'}}
    disk_images = {'image_id': args.image, 'kernel_id': None,
                   'ramdisk_id': None}
    base = os.path.join(CONF.instances_path,
                        CONF.image_cache.subdirectory_name,
                        hashlib.sha1(args.image.encode()).hexdigest())
    print(json.dumps({dist: importlib.metadata.version(dist) for dist in (
        'nova', 'python-glanceclient', 'oslo.utils', 'oslo.privsep')}),
        flush=True)
    for line in sys.stdin:
        instance = _instance(line.strip(), args.image, args.root_gb)
        start = time.perf_counter()
        # _create_image's preamble, then the root disk
        directory = os.path.join(CONF.instances_path, instance.uuid)
        os.makedirs(directory, exist_ok=True)
        open(os.path.join(directory, 'console.log'), 'a').close()
        drv._create_and_inject_local_root(
            ctx, instance, disk_mapping, False, '', disk_images, None, None)
        took = time.perf_counter() - start
        backend = drv.image_backend.by_name(instance, 'disk')
        print(json.dumps({'seconds': took, 'disk': backend.path,
                          'base': base}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
