"""One pass of a release's image cache manager, decided without acting.

:func:`scan` lists the base directory as the release classified it, with who
uses each file (:mod:`imagepipe.cache.usage`); :func:`decide` gives each
file the release's verdict (:mod:`imagepipe.cache.policy`, options from the
settings snapshot). ``cache list`` prints the first, ``cache clean`` the
second, and builds its removal steps from it (:mod:`imagepipe.cache.flow`).

Files imagepipe never touches whatever the release: a symbolic link, a file
of another owner, anything but a regular file (one warning each).
"""

import hashlib
import os
import re
import stat
import time

from imagepipe import exception
from imagepipe.cache import usage
from imagepipe.flows import paths as flow_paths

DIGEST = hashlib.sha1().digest_size * 2

#: kinds the manager looked at again; others are never removed
AGED = ('original', 'resized', 'swap', 'ephemeral')


def _is_generated(name):
    """nova/virt/libvirt/imagecache.py@33.0.2 _store_swap_image and
    _store_ephemeral_image."""
    parts = name.split('_')
    if len(parts) == 2 and parts[0] == 'swap' and parts[1].isdigit():
        return 'swap'
    if (len(parts) == 3 and parts[0] == 'ephemeral' and parts[1].isdigit()
            and len(parts[2]) == 7):
        return 'ephemeral'
    return None


def info_pattern(policy, settings):
    """The regular expression of a Folsom .. Juno info file path."""
    if policy.record_files != 'info':
        return None
    image = (f'([0-9a-f]{{{DIGEST}}}|[0-9a-f]{{{DIGEST}}}_sm|'
             f'[0-9a-f]{{{DIGEST}}}_[0-9]+)')
    try:
        return re.compile(settings['image_info_filename_pattern']
                          % {'image': image})
    except (KeyError, TypeError, ValueError, re.error) as e:
        raise exception.ConfigError(
            'image_info_filename_pattern '
            f"{settings['image_info_filename_pattern']!r} cannot be used: "
            f'{e}') from None


def record_of(policy, settings, path):
    """The record file removed with the base at ``path`` (or None)."""
    if policy.record_removed == 'info':
        return settings['image_info_filename_pattern'] % {
            'image': os.path.basename(path)}
    if policy.record_removed:
        return path + policy.record_removed
    return None


def classify(name, path, policy, pattern):
    """original, resized, swap, ephemeral, record or ignored."""
    if len(name) == DIGEST:
        return 'original'
    if len(name) > DIGEST + 2 and name[DIGEST] == '_':
        if policy.record_files == 'sha1' and name.endswith('.sha1'):
            return 'record'
        if pattern is not None and pattern.match(path):
            return 'record'
        return 'resized'
    if policy.ages_generated:
        return _is_generated(name) or 'ignored'
    return 'ignored'


def _problem(st):
    if stat.S_ISLNK(st.st_mode):
        return 'symbolic link'
    if not stat.S_ISREG(st.st_mode):
        return 'not a regular file'
    if st.st_uid not in (os.geteuid(), 0):
        return f'owned by uid {st.st_uid}'
    return None


def _users(name, base, runs, disks):
    found = [{'how': 'backing', 'instance': i, 'disk': d}
             for i, d in disks.get(name, ())]
    for use in runs:
        if use['base_dir'] != base or not usage.names_used(use, name):
            continue
        if usage.unfinished(use):
            found.append({'how': 'run', 'instance': use['instance'],
                          'run': use['run'], 'state': use['state']})
        elif usage.is_instance(use):
            how = 'copy' if use['backend'] in ('raw', 'lvm') else 'image'
            found.append({'how': how, 'instance': use['instance'],
                          'run': use['run']})
    return found


def scan(release, policy, settings, runs, now=None):
    """(entries, warnings): every file of the base directory."""
    now = time.time() if now is None else now
    base = usage.base_dir(release, settings)
    skip = {os.path.basename(base), flow_paths.LOCKS}
    disks, warnings, unread = usage.disk_uses(settings['instances_path'],
                                              skip)
    pattern = info_pattern(policy, settings)
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return base, [], warnings
    entries = []
    for name in names:
        path = os.path.join(base, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        problem = _problem(st)
        if problem:
            warnings.append(f'{path}: {problem}: listed, never followed nor '
                            'removed')
        entries.append({
            'name': name, 'path': path,
            'kind': classify(name, path, policy, pattern),
            'problem': problem, 'size': st.st_size,
            'allocated': st.st_blocks * 512,
            'age': int(now - st.st_mtime),
            'users': _users(name, base, runs, disks),
            'unread_disks': len(unread)})
    return base, entries, warnings


def _min_age(entry, settings):
    option = ('remove_unused_resized_minimum_age_seconds'
              if entry['kind'] == 'resized'
              else 'remove_unused_original_minimum_age_seconds')
    return option, settings[option]


def decide(entries, settings):
    """Each entry with ``action`` (remove, keep, in-use, ignored),
    ``reason`` and, for removals, ``min_age``."""
    decided = []
    for e in entries:
        e = dict(e)
        if e['problem']:
            e.update(action='keep', reason=f"{e['problem']}: never removed")
        elif e['kind'] not in AGED:
            e.update(action='ignored',
                     reason='not a cached image for this release')
        elif e['users']:
            who = ', '.join(sorted({u['how'] + ' ' + str(u['instance'])
                                    for u in e['users']}))
            e.update(action='in-use', reason=f'used by {who}')
        elif e.get('unread_disks'):
            # a disk whose backing file is unknown may use any base
            e.update(action='keep', reason=f"{e['unread_disks']} instance "
                     'disk(s) could not be read (see the warnings): no base '
                     'is removed while who uses it is unknown')
        elif not settings.get('remove_unused_base_images'):
            e.update(action='keep',
                     reason='unused; remove_unused_base_images is off')
        else:
            option, min_age = _min_age(e, settings)
            e['min_age'] = min_age
            if e['age'] < min_age:
                e.update(action='keep', reason=f"unused, too young: age "
                         f"{e['age']}s < {option} {min_age}")
            else:
                e.update(action='remove', reason=f"unused, age {e['age']}s "
                         f'>= {option} {min_age}')
        decided.append(e)
    return decided


def touched(entry):
    """Nova refreshed the mtime of a base its instances' images name."""
    return entry['action'] == 'in-use' and any(
        u['how'] in ('image', 'copy') for u in entry['users'])
