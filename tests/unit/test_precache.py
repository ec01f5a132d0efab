"""The pre-cache flow: the touch of an existing base first, then the boot's
fetch section, all under the fetch lock; its status read from a run."""

import os

from imagepipe import flows
from imagepipe.cache import precache
from imagepipe.conf import loader
from imagepipe.conf import settings as conf_settings
from imagepipe.tasks import locks
from tests.plans import IMAGE
from tests.plans import Plan


def _plan(tmp_path):
    instances = str(tmp_path / 'instances')
    path = tmp_path / 'nova.conf'
    path.write_text(f'[DEFAULT]\ninstances_path = {instances}\n')
    settings = conf_settings.snapshot(
        loader.load([str(path)], release='gazpacho'))
    kwargs = {'release': 'gazpacho', 'settings': settings,
              'request': {'operation': precache.OPERATION, 'image': IMAGE,
                          'instance': '_base'}}
    return Plan(flows.factory(**kwargs), kwargs, instances)


def test_the_touch_opens_the_fetch_section(tmp_path):
    plan = _plan(tmp_path)
    assert plan.names() == [precache.TOUCH, 'root-fetch', 'root-inspect',
                            'root-convert', 'root-publish']
    assert {plan.lock(n) for n in plan.names()} == {'$hex'}
    lasts = [plan.inject(n)['lock']['last'] for n in plan.names()]
    assert lasts == [False, False, False, False, True]
    assert plan.commands()[:2] == [
        (precache.TOUCH, []), ('root-fetch', [f'GET {IMAGE} -o $B/$hex.part'])]


def test_the_touch_records_an_existing_base_and_keeps_the_lock(tmp_path):
    plan = _plan(tmp_path)
    touch = plan.atoms[precache.TOUCH]
    args = plan.inject(precache.TOUCH)
    base = args['base']
    os.makedirs(args['lock']['path'])
    try:
        assert touch.execute(**args) == {'existing': False, 'base': base}
        assert locks.is_held(args['lock']['name'])  # the fetch goes on
        os.makedirs(os.path.dirname(base))
        with open(base, 'wb') as f:
            f.write(b'base')
        os.utime(base, (1, 1))
        assert touch.execute(**args) == {'existing': True, 'base': base}
        assert os.stat(base).st_mtime > 1
        with open(base, 'rb') as f:
            assert f.read() == b'base'
    finally:
        locks.release_owned()
