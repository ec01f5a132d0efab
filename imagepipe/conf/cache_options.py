"""The image cache manager's options (imagepipe.cache.policy has the rules).

Facts: nova/virt/libvirt/imagecache.py at each tag, nova/virt/imagecache.py
from 2014.1.5, nova/compute/manager.py for the interval until 2013.2.4 and
nova/conf/imagecache.py at 33.0.2 (what the interval's values meant:
imagepipe.cache.policy.pass_interval). Icehouse also accepted
[libvirt] remove_unused_base_images and
[libvirt] remove_unused_original_minimum_age_seconds, names those options
never had: not modelled.
"""

from imagepipe.conf.spellings import Option
from imagepipe.conf.spellings import spelling as _one

OPTIONS = (
    Option('image_cache_manager_interval', 'int', 40,
           'Periodic ticks (about a minute each) between two passes of the '
           'image cache manager; 0 turns it off. imagepipe conductor makes '
           'the pass every interval + 1 ticks of 60 s, as Nova did.',
           (_one('DEFAULT', 'image_cache_manager_interval', 'essex', 'juno',
                 'gazpacho'),
            _one('image_cache', 'manager_interval', 'gazpacho')),
           per_release=(('folsom', {'default': 0}),
                        ('grizzly', {
               'default': 2400,
               'help': 'Seconds between two passes of the image cache '
                       'manager (by imagepipe conductor, the first one '
                       'interval after it starts); 0 turns it off.'}),
                        ('juno', {
               'help': 'Seconds between two passes of the image cache '
                       'manager (by imagepipe conductor, the first one '
                       'interval after it starts); -1 turns it off (0 '
                       'does too, until it came to mean the default '
                       'rate).'}),
                        ('gazpacho', {
               'help': 'Seconds between two passes of the image cache '
                       'manager (by imagepipe conductor, the first one '
                       'interval after it starts); 0 runs it at the '
                       'periodic task rate (60 s), -1 turns it off.'})),
           read_by='imagepipe conductor'),
    Option('remove_unused_base_images', 'bool', False,
           'Whether the image cache manager removes the cached images no '
           'instance uses (once old enough).',
           (_one('DEFAULT', 'remove_unused_base_images', 'essex', 'juno',
                 'gazpacho'),
            _one('image_cache', 'remove_unused_base_images', 'gazpacho')),
           per_release=(('folsom', {'default': True}),)),
    Option('remove_unused_original_minimum_age_seconds', 'int', 24 * 3600,
           'Minimum age (seconds since the last change of its mtime) of an '
           'unused cached image as downloaded before it is removed.',
           (_one('DEFAULT', 'remove_unused_original_minimum_age_seconds',
                 'essex', 'juno', 'gazpacho'),
            _one('image_cache', 'remove_unused_original_minimum_age_seconds',
                 'gazpacho'))),
    Option('remove_unused_resized_minimum_age_seconds', 'int', 3600,
           'Minimum age of an unused resized cached image (<hex>_<size>) '
           'before it is removed.',
           (_one('DEFAULT', 'remove_unused_resized_minimum_age_seconds',
                 'essex', 'havana', 'icehouse'),
            _one('libvirt', 'remove_unused_resized_minimum_age_seconds',
                 'icehouse', 'juno', 'gazpacho'),
            _one('image_cache', 'remove_unused_resized_minimum_age_seconds',
                 'gazpacho'))),
    Option('precache_concurrency', 'int', 1,  # nova/conf/imagecache.py@33.0.2
           'Hosts pre-cached at a time by "imagepipe precache --host" '
           '(at least 1), as Nova\'s conductor bounded its workers.',
           (_one('image_cache', 'precache_concurrency', 'gazpacho'),),
           read_by='imagepipe precache'),
    Option('checksum_base_images', 'bool', False,
           'Whether the image cache manager records a SHA-1 of each cached '
           'image in use and compares it on later passes.',
           (_one('DEFAULT', 'checksum_base_images', 'essex', 'havana',
                 'icehouse'),
            _one('libvirt', 'checksum_base_images', 'icehouse', 'juno')),
           ignored='checksums are reported by "imagepipe cache clean", '
                   'not computed (see doc/source/cache.rst)'),
    Option('checksum_interval_seconds', 'int', 3600,
           'Seconds during which a recorded checksum is trusted without '
           'reading the image again.',
           (_one('DEFAULT', 'checksum_interval_seconds', 'grizzly', 'havana',
                 'icehouse'),
            _one('libvirt', 'checksum_interval_seconds', 'icehouse',
                 'juno')),
           ignored='checksums are not computed: "imagepipe cache clean" '
                   'reports what checksum_base_images asked for'),
    Option('image_info_filename_pattern', 'str',
           '$instances_path/$base_dir_name/%(image)s.info',
           'Where the JSON record of a cached image (its checksum) is kept; '
           '%(image)s is the cached file name.',
           (_one('DEFAULT', 'image_info_filename_pattern', 'folsom',
                 'havana', 'icehouse'),
            _one('libvirt', 'image_info_filename_pattern', 'icehouse',
                 'juno')),
           per_release=(('icehouse', {
               'default': '$instances_path/$image_cache_subdirectory_name/'
                          '%(image)s.info'}),)),
)
