"""What each release's image cache manager did, as data.

One :class:`Policy` per release, read from Nova's own code:

- essex: nova/virt/libvirt/imagecache.py@2012.1.3 (the interval in
  nova/compute/manager.py@2012.1.3, periodic ticks);
- folsom: nova/virt/libvirt/imagecache.py@2012.2.4 (checksums in
  ``<base>.info`` files, nova/virt/libvirt/utils.py@2012.2.4);
- grizzly: nova/virt/libvirt/imagecache.py@2013.1.5 (interval in seconds,
  checksums under a ``hash-<name>`` lock, at most every
  checksum_interval_seconds);
- havana: nova/virt/libvirt/imagecache.py@2013.2.4 (as Grizzly);
- icehouse: nova/virt/imagecache.py@2014.1.5 and
  nova/virt/libvirt/imagecache.py@2014.1.5 (options split between
  [DEFAULT] and [libvirt]);
- juno: the same files @2014.2.4;
- gazpacho: nova/virt/libvirt/imagecache.py@33.0.2.

What every release shared: a file of the base directory is an *original*
when its name is 40 characters (the SHA-1 of an image id), *resized* when it
is longer than 42 with ``_`` at index 40 (``<hex>_<GiB>``, the old
``<hex>_sm``); everything else was never looked at again. A base is in use
when an instance's image id hashes to it (``<hex>``, ``<hex>_sm`` and every
``<hex>_<N>``) or when the ``disk`` of an instance directory has it as
backing file; in-use bases get a fresh mtime. The others are removed, when
remove_unused_base_images is set, once their mtime is older than the
minimum age of their kind.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Policy:
    #: Nova's file and tag the rules were read from
    source: str
    #: ``<hex>_*`` names skipped as records: 'sha1' (``*.sha1``, Essex),
    #: 'info' (names the image_info_filename_pattern matches, Folsom ..
    #: Juno) or None (none skipped)
    record_files: str | None
    #: the record removed with its base: a suffix, or 'info' for the file
    #: image_info_filename_pattern names; None for none
    record_removed: str | None
    #: ``swap_<N>`` and ``ephemeral_<N>_<7 chars>`` bases classified and
    #: removed (at the original age) when no instance uses them
    ages_generated: bool = False
    #: the removal takes the base's lock and checks existence and age again
    #: inside it (before: checked once, removed unlocked, LP#1256838)
    locked_removal: bool = False
    #: after an image base is removed, its lock file goes too
    removes_lock_file: bool = False
    #: how checksum_base_images worked: 'essex' (a ``.sha1`` found was
    #: always compared; written only with the option), 'info' (only with
    #: the option), 'timestamped' (also skipped for
    #: checksum_interval_seconds after the last one), or None (gone)
    checksums: str | None = None
    #: what image_cache_manager_interval counts: 'ticks' of the periodic
    #: task loop or 'seconds' (see :func:`pass_interval`)
    interval_unit: str = 'seconds'
    #: seconds between passes when the interval is 0; None: no pass
    zero_interval: int | None = None


ESSEX = Policy(source='nova/virt/libvirt/imagecache.py@2012.1.3',
               record_files='sha1', record_removed='.sha1',
               checksums='essex', interval_unit='ticks')
FOLSOM = dataclasses.replace(
    ESSEX, source='nova/virt/libvirt/imagecache.py@2012.2.4',
    record_files='info', record_removed='info', checksums='info')
GRIZZLY = dataclasses.replace(
    FOLSOM, source='nova/virt/libvirt/imagecache.py@2013.1.5',
    checksums='timestamped', interval_unit='seconds')
HAVANA = dataclasses.replace(
    GRIZZLY, source='nova/virt/libvirt/imagecache.py@2013.2.4')
ICEHOUSE = dataclasses.replace(
    HAVANA, source='nova/virt/libvirt/imagecache.py@2014.1.5')
JUNO = dataclasses.replace(
    ICEHOUSE, source='nova/virt/libvirt/imagecache.py@2014.2.4')
GAZPACHO = Policy(source='nova/virt/libvirt/imagecache.py@33.0.2',
                  record_files=None, record_removed=None,
                  ages_generated=True, locked_removal=True,
                  removes_lock_file=True, checksums=None, zero_interval=60)

POLICIES = {'essex': ESSEX, 'folsom': FOLSOM, 'grizzly': GRIZZLY,
            'havana': HAVANA, 'icehouse': ICEHOUSE, 'juno': JUNO,
            'gazpacho': GAZPACHO}


#: seconds of one tick of the periodic task loop (nova/service.py@2012.1.3
#: periodic_interval, whose default nobody could change per task)
TICK = 60


def for_release(name):
    """The policy of the options release ``name`` (conf.releases)."""
    return POLICIES[name]


def pass_interval(policy, value):
    """Seconds from the start of nova-compute to its first image cache
    manager pass, and between two passes, for image_cache_manager_interval
    ``value``; None when that release never made the pass.

    Ticks (nova/manager.py@2012.1.3 and @2012.2.4 ``periodic_tasks``): a
    task skipped ``value`` ticks and ran on the next one, so every
    ``value + 1`` ticks, the first after as many; a negative value skipped
    none (every tick); at 0 the pass returned at once
    (nova/compute/manager.py@2012.1.3 ``_run_image_cache_manager_pass``).

    Seconds (nova/manager.py@2013.1.5 ``periodic_task``, later
    oslo.service's): a task last ran when nova-compute started, so the
    first pass came one spacing after it; a negative spacing was never
    scheduled; 0 ran on every tick, where the pass returned at once
    (nova/compute/manager.py@2013.1.5 .. @2014.2.4) until 33.0.2 ran it at
    the periodic task rate (``zero_interval``).
    """
    if policy.interval_unit == 'ticks':
        return None if value == 0 else (max(value, 0) + 1) * TICK
    if value < 0:
        return None
    return policy.zero_interval if value == 0 else value
