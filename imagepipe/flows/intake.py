"""The intake every release begins with: Nova's ``images.fetch_to_raw``.

Under the fetch lock ``$hex``: download to ``$B/$hex.part``, inspect,
convert to raw when ``force_raw_images`` asks for it, publish as ``$B/$hex``
(nova/virt/images.py@2013.1.5 and @33.0.2, fetch_to_raw).
"""

from imagepipe.flows import deviations
from imagepipe.flows.steps import Step
from imagepipe.tasks import convert
from imagepipe.tasks import fetch
from imagepipe.tasks import inspect
from imagepipe.tasks import publish


def steps(build):
    """images.fetch_to_raw under the fetch lock ``$hex``."""
    p, t = build.paths, build.traits
    part, converted = p.base + '.part', p.base + '.converted'
    glance = {'api_servers': build.settings['glance_endpoints'],
              'num_retries': build.settings['glance_num_retries'],
              'insecure': bool(build.settings['glance_api_insecure']),
              'download_retries': build.settings['download_retries']}
    # Releases whose Nova compared the image with the flavor only once it
    # was fetched and converted are checked before converting too.
    checks_size = t.max_size_check or t.size_check_after_fetch
    max_size = build.size if checks_size else None
    fetch_args = {'image': build.request['image'], 'glance': glance,
                  'part': part, 'base': p.base}
    fetch_notes = []
    slots = build.disk_ops()
    if slots:
        fetch_args['disk_ops'] = slots
    if max_size:
        fetch_args['max_size'] = max_size
        fetch_notes.append(deviations.note('header-size'))
    if not t.file_locks:
        fetch_notes.append(deviations.note('essex-locks'))
    if not t.fetch_rechecks_in_lock:
        fetch_notes.append(deviations.note('fetch-lock-check'))
    inspect_args = {'part': part, 'base': p.base, 'max_size': max_size,
                    'expected_format': None,
                    'vmdk_allowed_types': build.settings.get(
                        'vmdk_allowed_types')}
    if t.nova_inspects:
        inspect_cls = inspect.DeepInspect
        inspect_args['deep'] = build.deep
        inspect_notes = [deviations.note('qcow2-check')]
    else:
        inspect_cls = inspect.Inspect
        inspect_notes = [deviations.note('inspection')]
    if t.size_check_after_fetch and not t.max_size_check:
        inspect_notes.append(deviations.note('size-before-convert'))
    elif not checks_size:
        inspect_notes.append(
            'this release did not compare the virtual size with the flavor '
            f'(nova/virt/images.py@{build.release.nova_tag}, fetch_to_raw)')
    force_raw = build.settings['force_raw_images']
    convert_notes = build.article('convert-order') if force_raw else []
    if force_raw and not t.convert_pinned:
        convert_notes.append(deviations.note('pinned-format'))
    convert_args = {'part': part, 'converted': converted, 'base': p.base,
                    'force_raw': force_raw, 'pin_format': True}
    if t.convert_pinned:
        convert_args['nova_pins_format'] = True
    if slots:
        convert_args['disk_ops'] = slots
    return build.section(p.hex, [
        Step(fetch.Fetch, 'root-fetch', fetch_args, notes=fetch_notes),
        Step(inspect_cls, 'root-inspect', inspect_args,
             wire={'fetched': 'root-fetch'}, notes=inspect_notes),
        Step(convert.ConvertToRaw, 'root-convert', convert_args,
             wire={'image': 'root-inspect'},
             notes=convert_notes),
        Step(publish.Publish, 'root-publish', {'base': p.base},
             wire={'image': 'root-convert'}),
    ])
