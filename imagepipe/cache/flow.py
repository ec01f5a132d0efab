"""The flow of one cache pass, from the pass decided when it started.

``request`` holds the decided pass (``operation`` ``cache-clean``, the
files to touch and to remove, each removal with its minimum age, locks and
record), so the factory is a pure function of JSON and a resumed pass
rebuilds the same steps; every removal checks again inside its locks
(:class:`~imagepipe.cache.tasks.RemoveBase`), so a pass resumed late
removes nothing that became used meanwhile.
"""

import os

from taskflow.patterns import linear_flow

from imagepipe import flows
from imagepipe.cache import manager
from imagepipe.cache import policy as cache_policy
from imagepipe.cache import tasks
from imagepipe.flows import paths as flow_paths

OPERATION = 'cache-clean'


def _lock_names(release, base_dir, entry):
    """The fetch lock (``$hex`` or the generated base's name) and, if the
    release named it otherwise, the copy lock of the base."""
    name = entry['name']
    own = name[:manager.DIGEST] if entry['kind'] in (
        'original', 'resized') else name
    names = [own]
    try:
        by_path = flows.get(release).traits.copy_lock_is_path
    except Exception:
        by_path = False
    if by_path:
        names.append(os.path.join(base_dir, own))
    return names


def request_for(release, conf_release, settings, base_dir, entries):
    """The JSON request of a pass that acts on the decided ``entries``."""
    policy = cache_policy.for_release(conf_release)
    removals = []
    for e in entries:
        if e['action'] != 'remove':
            continue
        image_base = e['kind'] in ('original', 'resized')
        removals.append({
            'name': e['name'], 'path': e['path'], 'min_age': e['min_age'],
            'lock_names': _lock_names(release, base_dir, e),
            'record': manager.record_of(policy, settings, e['path']),
            'lock_file': (e['name'] if policy.removes_lock_file
                          and image_base else None)})
    return {'operation': OPERATION, 'image': None,
            'instance': os.path.basename(base_dir),
            'touch': [e['path'] for e in entries if manager.touched(e)],
            'remove': removals}


def build(release, settings, request):
    """taskflow factory of a pass (``flows.factory`` dispatches here)."""
    flow = linear_flow.Flow(f'{release}-{OPERATION}')
    lock_path = os.path.join(settings['instances_path'], flow_paths.LOCKS)
    for path in request['touch']:
        flow.add(tasks.TouchBase(f'touch-{os.path.basename(path)}',
                                 inject={'path': path}))
    for r in request['remove']:
        flow.add(tasks.RemoveBase(
            f"remove-{r['name']}",
            inject={'path': r['path'], 'min_age': r['min_age'],
                    'lock_names': r['lock_names'], 'lock_path': lock_path,
                    'record': r['record'], 'lock_file': r['lock_file'],
                    'connection': settings['connection']}))
    return flow
