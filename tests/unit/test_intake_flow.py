"""Fetch, Inspect, ConvertToRaw, Publish as one persisted taskflow flow."""

import contextlib
import filecmp
import os

import pytest
from taskflow import engines
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import backends

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks.convert import ConvertToRaw
from imagepipe.tasks.fetch import Fetch
from imagepipe.tasks.inspect import Inspect
from imagepipe.tasks.publish import Publish
from tests import httpserver
from tests import images

pytestmark = pytest.mark.slow

HEX = 'f00d'


class Boom(task.Task):
    def execute(self):
        raise exception.ImagepipeError('boom')


def intake(image, base_dir, lock_dir, fail_after=None):
    """The flow, with a failing task after the task named ``fail_after``."""
    part, converted, base = (os.path.join(base_dir, HEX + suffix)
                             for suffix in ('.part', '.converted', ''))
    lock = {'name': HEX, 'path': lock_dir, 'external': True, 'last': False}
    steps = [
        Fetch('fetch', inject={'image': image, 'glance': None, 'part': part,
                               'base': base, 'lock': lock}),
        Inspect('inspect', inject={'part': part, 'base': base,
                                   'max_size': images.MiB * 128,
                                   'expected_format': None,
                                   'vmdk_allowed_types': None, 'lock': lock},
                wire={'fetched': 'fetch'}),
        ConvertToRaw('convert', inject={'part': part, 'converted': converted,
                                        'base': base, 'force_raw': True,
                                        'pin_format': True, 'lock': lock},
                     wire={'image': 'inspect'}),
        Publish('publish', inject={'base': base,
                                   'lock': {**lock, 'last': True}},
                wire={'image': 'convert'}),
    ]
    flow = linear_flow.Flow('intake')
    for step in steps:
        flow.add(step)
        if step.name == fail_after:
            flow.add(Boom('boom'))
    return flow


@pytest.fixture
def backend(tmp_path):
    backend = backends.fetch(
        {'connection': f'sqlite:///{tmp_path / "flows.sqlite"}'})
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
    return backend


@pytest.fixture
def dirs(tmp_path):
    base_dir = tmp_path / '_base'
    base_dir.mkdir()
    return str(base_dir), str(tmp_path / 'locks')


@pytest.fixture
def qcow2_url(image_dir, qcow2_image):
    with httpserver.Server(image_dir) as srv:
        yield srv.url(os.path.basename(qcow2_image))


def test_qcow2_over_http_becomes_raw_base(qcow2_url, raw_image, dirs,
                                          backend):
    base_dir, lock_dir = dirs
    engine = engines.load(intake(qcow2_url, base_dir, lock_dir),
                          backend=backend)
    engine.run()
    base = os.path.join(base_dir, HEX)
    assert os.listdir(base_dir) == [HEX]
    assert images.info(base)['format'] == 'raw'
    assert filecmp.cmp(raw_image, base, shallow=False)
    assert engine.storage.fetch('publish') == {'path': base, 'format': 'raw'}
    assert engine.storage.fetch('inspect')['format'] == 'qcow2'
    assert not locks.is_held(HEX)


@pytest.mark.parametrize('fail_after, left', [
    ('convert', []),       # inside the locked section
    ('publish', [HEX]),    # after it: the published base is kept, as in Nova
])
def test_failure_reverts(qcow2_url, dirs, backend, fail_after, left):
    base_dir, lock_dir = dirs
    engine = engines.load(intake(qcow2_url, base_dir, lock_dir, fail_after),
                          backend=backend)
    with pytest.raises(exception.ImagepipeError, match='boom'):
        engine.run()
    assert os.listdir(base_dir) == left
    assert not locks.is_held(HEX)
