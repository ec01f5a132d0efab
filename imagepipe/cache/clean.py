"""One pass of the image cache manager as a stored run: what ``imagepipe
cache clean`` makes each time it is called and ``imagepipe conductor``
makes every image_cache_manager_interval (:mod:`imagepipe.fleet.periodic`).

:func:`survey` lists the base directory with who uses each file (the runs
of the run database and the instance disks), :func:`decide` gives each file
the release's verdict, :func:`make` stores the pass as a run of the
``cache-clean`` operation (:mod:`imagepipe.cache.flow`) and drives it under
its run lock; each step takes the base's locks itself, so boots in other
threads and processes are safe against it.
"""

import dataclasses

from imagepipe.cache import flow as cache_flow
from imagepipe.cache import manager
from imagepipe.cache import policy as cache_policy
from imagepipe.cache import usage
from imagepipe.conf import settings as conf_settings
from imagepipe.runner import driver
from imagepipe.runner import persistence


@dataclasses.dataclass
class Survey:
    settings: dict
    policy: cache_policy.Policy
    base: str
    entries: list
    warnings: list


def survey(rconf, runs):
    """The base directory of ``rconf``'s release as its manager saw it;
    ``runs`` is the run store whose runs count as users."""
    settings = conf_settings.snapshot(rconf)
    policy = cache_policy.for_release(rconf.options_release)
    with persistence.usable(rconf.conf.imagepipe.connection):
        uses = usage.run_uses(runs)
    base, entries, warnings = manager.scan(rconf.release, policy, settings,
                                           uses)
    return Survey(settings, policy, base, entries, warnings)


def decide(found):
    return manager.decide(found.entries, found.settings)


def notes(found):
    """What the release did that a pass here does not, one line each."""
    lines = []
    settings, policy = found.settings, found.policy
    if settings.get('checksum_base_images') and policy.checksums:
        lines.append(
            'checksum_base_images is set: this release hashed each base in '
            f'use on every pass ({policy.source}); imagepipe reports it and '
            'does not hash')
    value = settings.get('image_cache_manager_interval')
    if value is not None and cache_policy.pass_interval(policy,
                                                        value) is None:
        lines.append(f'image_cache_manager_interval is {value}: this '
                     "release's Nova never ran the pass; this one runs "
                     'because it was asked for')
    return lines


def make(rconf, runs, lock_dir, found, decided, listeners=()):
    """Store and drive the pass that acts on ``decided``: a dict with
    ``run``, ``state``, ``step`` and ``error`` (a failed step), the paths
    ``removed``, ``kept`` (each with why it was kept inside its locks) and
    ``touched``."""
    release = rconf.release
    request = cache_flow.request_for(release, rconf.options_release,
                                     found.settings, found.base, decided)
    kwargs = {'release': release, 'settings': found.settings,
              'request': request}
    flow = cache_flow.build(**kwargs)
    with persistence.usable(rconf.conf.imagepipe.connection):
        run_id, state, step, error = driver.start_operation(
            runs, kwargs, flow, lock_dir, listeners)
        results = {ad.name: ad.results for ad in runs.get(run_id)}
    removed, kept = [], []
    for r in request['remove']:
        done = results.get(f"remove-{r['name']}")
        if not isinstance(done, dict):
            continue  # not run: the pass failed or suspended before it
        if done.get('removed'):
            removed.append(r['path'])
        else:
            kept.append({'path': r['path'], 'why': done['kept']})
    return {'run': run_id, 'state': state, 'step': step, 'error': error,
            'removed': removed, 'kept': kept, 'touched': request['touch']}
