"""Every Nova option imagepipe reads, declared once with its history.

Each option's spellings and per-release changes are declared as
:mod:`imagepipe.conf.spellings` describes. Facts: openstack/nova's option
declarations at the final point release of each series (e.g.
nova/virt/libvirt/imagebackend.py@2012.1.3, nova/image/glance.py@2014.2.4:
2012.1.3, 2012.2.4, 2013.1.5, 2013.2.4, 2014.1.5, 2014.2.4), and
nova/conf/*.py@33.0.2 for Gazpacho (oslo_concurrency/lockutils.py of
oslo.concurrency for ``[oslo_concurrency]``).

Every option a release reads reaches the flow (tests/unit/test_conf.py walks
them all), unless ``ignored`` says why it has no effect in imagepipe.
"""

from imagepipe.conf import cache_options
from imagepipe.conf import fleet_options
from imagepipe.conf.spellings import Option
from imagepipe.conf.spellings import spelling as _one

IMAGES_TYPES = ('raw', 'qcow2', 'lvm', 'default')

#: [libvirt] images_type in 33.0.2: flat is Newton's name of raw; rbd and
#: ploop are valid for Nova but refused by imagepipe when a flow is built.
MODERN_IMAGES_TYPES = ('raw', 'flat', 'qcow2', 'lvm', 'rbd', 'ploop',
                       'default')

_BOOT = (
    Option('state_path', 'str', '/var/lib/nova',
           "Top-level directory for Nova's state. Nova defaulted to its own "
           'install directory ($pybasedir); imagepipe defaults to the '
           "distributions' /var/lib/nova.",
           (_one('DEFAULT', 'state_path', 'essex'),)),
    Option('instances_path', 'str', '$state_path/instances',
           'Where instances (and the image cache) are stored on disk.',
           (_one('DEFAULT', 'instances_path', 'essex'),)),
    Option('use_cow_images', 'bool', True,
           'Whether to use copy-on-write (qcow2 overlay) instance disks.',
           (_one('DEFAULT', 'use_cow_images', 'essex'),)),
    Option('force_raw_images', 'bool', True,
           'Convert cached base images to raw.',
           (_one('DEFAULT', 'force_raw_images', 'essex'),)),
    Option('images_type', 'str', 'default',
           'Instance disk format: raw, qcow2, lvm, default (default follows '
           'use_cow_images).',
           (_one('DEFAULT', 'libvirt_images_type', 'folsom', 'havana',
                 'icehouse'),
            _one('libvirt', 'images_type', 'icehouse')),
           choices=IMAGES_TYPES,
           per_release=(('havana', {
               'choices': ('raw', 'qcow2', 'lvm', 'rbd', 'default'),
               'help': 'Instance disk format: raw, qcow2, lvm, rbd, default '
                       '(default follows use_cow_images). rbd is accepted '
                       'and refused at run time.'}),
                        ('gazpacho', {
               'choices': MODERN_IMAGES_TYPES,
               'help': 'Instance disk backend: raw or flat (a full copy), '
                       'qcow2 (an overlay), lvm, rbd, ploop, default '
                       '(default follows use_cow_images). rbd and ploop are '
                       'accepted and refused at run time.'}))),
    Option('images_volume_group', 'str', None,
           'LVM volume group for instance disks when images_type is lvm.',
           (_one('DEFAULT', 'libvirt_images_volume_group', 'folsom',
                 'havana', 'icehouse'),
            _one('libvirt', 'images_volume_group', 'icehouse'))),
    Option('sparse_logical_volumes', 'bool', False,
           'Create sparse logical volumes (with virtualsize).',
           (_one('DEFAULT', 'libvirt_sparse_logical_volumes', 'folsom',
                 'havana', 'icehouse'),
            _one('libvirt', 'sparse_logical_volumes', 'icehouse'))),
    Option('preallocate_images', 'str', 'none',
           'Instance disk preallocation: "none" or "space" (fallocate). '
           'Nova of these releases treated any value but "none" as "space".',
           (_one('DEFAULT', 'preallocate_images', 'grizzly'),),
           per_release=(('gazpacho', {
               'choices': ('none', 'space'),
               'help': 'Instance disk preallocation: "none" or "space" '
                       '(fallocate). Only "space" preallocates (Kilo+); '
                       'other values are refused (Liberty+).'}),)),
    Option('resize_fs_using_block_device', 'bool', False,
           'Grow the filesystem inside qcow2 disks through an nbd device.',
           (_one('DEFAULT', 'resize_fs_using_block_device', 'havana'),),
           per_release=(('gazpacho', {
               'ignored': 'a boot makes the qcow2 overlay at the flavor '
                          'size and never calls disk.extend(), the one '
                          'reader of the option (Qcow2.create_image in '
                          'nova/virt/libvirt/imagebackend.py@33.0.2)',
               'ignored_by_nova': True}),)),
    Option('image_cache_subdirectory_name', 'str', '_base',
           'Name of the image cache directory under instances_path.',
           (_one('DEFAULT', 'base_dir_name', 'essex', 'havana', 'icehouse'),
            _one('DEFAULT', 'image_cache_subdirectory_name', 'icehouse',
                 'juno', 'gazpacho'),
            _one('image_cache', 'subdirectory_name', 'gazpacho')),
           per_release=(('folsom', {
               'help': 'Name of the image cache directory under '
                       "instances_path. Folsom's libvirt driver wrote the "
                       'cache to _base whatever it said (Image.cache in '
                       'nova/virt/libvirt/imagebackend.py@2012.2.4, '
                       'LP#1083447); only image_info_filename_pattern, '
                       'where the image cache manager kept its records, '
                       'read it.'}),
                        ('grizzly', {
               'help': 'Name of the image cache directory under '
                       'instances_path.'}))),
    Option('volume_clear', 'str', 'zero',
           'How a logical volume is wiped before removal: none, zero, shred.',
           (_one('libvirt', 'volume_clear', 'icehouse'),),
           choices=('none', 'zero', 'shred')),
    Option('volume_clear_size', 'int', 0,
           'MiB wiped at the start of a removed volume; 0 wipes all of it.',
           (_one('libvirt', 'volume_clear_size', 'icehouse'),)),
    Option('disable_process_locking', 'bool', False,
           'Use in-process locks only (no lock files).',
           (_one('DEFAULT', 'disable_process_locking', 'essex', 'juno',
                 'gazpacho'),
            _one('oslo_concurrency', 'disable_process_locking',
                 'gazpacho')),
           ignored='the image cache locks stay lock files: every imagepipe '
                   'run is a process of its own, and with in-process locks '
                   'two runs would download into one .part (the option '
                   'served the threads of one nova-compute)'),
    Option('my_ip', 'str', None,
           "This host's IP address (the default Glance host).",
           (_one('DEFAULT', 'my_ip', 'essex'),),
           sample_default='<host ipv4>',
           per_release=(('gazpacho', {
               'ignored': 'modern Nova finds Glance through api_servers or '
                          'the Keystone catalog, never through my_ip; the '
                          "option serves Nova's other services",
               'ignored_by_nova': True}),)),
    # [glance] host, port and protocol were gone by Newton (14.0.0): modern
    # Nova finds Glance in the Keystone catalog unless api_servers is set.
    Option('glance_host', 'str', '$my_ip', 'Default Glance host name or IP.',
           (_one('DEFAULT', 'glance_host', 'essex', 'icehouse', 'juno'),
            _one('glance', 'host', 'juno', 'juno'))),
    Option('glance_port', 'int', 9292, 'Default Glance port.',
           (_one('DEFAULT', 'glance_port', 'essex', 'icehouse', 'juno'),
            _one('glance', 'port', 'juno', 'juno'))),
    Option('glance_protocol', 'str', 'http',
           'Default protocol for Glance: http or https.',
           (_one('DEFAULT', 'glance_protocol', 'grizzly', 'icehouse', 'juno'),
            _one('glance', 'protocol', 'juno', 'juno'))),
    Option('glance_api_servers', 'list', ['$glance_host:$glance_port'],
           'Glance API servers as [scheme://]host:port, tried in turn.',
           (_one('DEFAULT', 'glance_api_servers', 'essex', 'icehouse',
                 'juno'),
            _one('glance', 'api_servers', 'juno')),
           per_release=(('juno', {'default': None}),
                        ('gazpacho', {
               'help': 'Glance API servers as scheme://host:port[/path], '
                       'tried in turn. Deprecated for removal since 21.0.0; '
                       'unset, the image endpoint comes from the Keystone '
                       'catalog.'}))),
    Option('glance_api_insecure', 'bool', False,
           'Do not verify the certificate of an https Glance server (Nova '
           "passed it to glanceclient's insecure: "
           'nova/image/glance.py@2014.2.4; a keystoneauth1 session option '
           'in nova/conf/glance.py@33.0.2).',
           (_one('DEFAULT', 'glance_api_insecure', 'folsom', 'icehouse',
                 'juno'),
            _one('glance', 'api_insecure', 'juno', 'juno', 'gazpacho'),
            _one('glance', 'insecure', 'gazpacho'))),
    Option('glance_num_retries', 'int', 0,
           'Attempts after the first to reach Glance when a server cannot be '
           'reached or answers 503, each on the next of api_servers, a '
           'second apart (GlanceClientWrapper.call in '
           'nova/image/glance.py@2014.2.4). Nova shuffled api_servers; '
           'imagepipe tries them in the order given.',
           (_one('DEFAULT', 'glance_num_retries', 'essex', 'icehouse',
                 'juno'),
            _one('glance', 'num_retries', 'juno')),
           per_release=(('gazpacho', {'default': 3}),)),
    Option('vmdk_allowed_types', 'list',
           ['streamOptimized', 'monolithicSparse'],
           'VMDK create-types a download may have (CVE-2022-47951); an '
           'empty list refuses every VMDK image.',
           (_one('compute', 'vmdk_allowed_types', 'gazpacho'),)),
    # nova/conf/compute.py@33.0.2 (Stein 19.0.0); the semaphore is
    # disk_ops_semaphore in nova/compute/utils.py@33.0.2
    Option('max_concurrent_disk_ops', 'int', 0,
           'Image downloads and qemu-img conversions (of a download to raw, '
           'of a base into a logical volume) that may run at once on this '
           'host, across all its runs and conductor jobs; the others wait. '
           '0: no limit.',
           (_one('compute', 'max_concurrent_disk_ops', 'gazpacho'),),
           minimum=0),
    Option('disable_deep_image_inspection', 'bool', False,
           'Skip the format inspector on downloads and cached bases, and its '
           'agreement with Glance and qemu-img (OSSA-2024-001 workaround); '
           'backing files, data-files and VMDK create-types are still '
           'refused.',
           (_one('workarounds', 'disable_deep_image_inspection',
                 'gazpacho'),)),
)

OPTIONS = _BOOT + cache_options.OPTIONS + fleet_options.OPTIONS

BY_KEY = {o.key: o for o in OPTIONS}


def for_release(release):
    """The options that existed in ``release``, in declaration order."""
    return [o for o in OPTIONS if o.spelling_in(release)]
