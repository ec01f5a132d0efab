import json
import os

import pytest

from imagepipe import exception
from imagepipe.tasks import locks
from imagepipe.tasks.publish import Publish


@pytest.fixture
def paths(tmp_path):
    return {'converted': str(tmp_path / 'abc.converted'),
            'base': str(tmp_path / 'abc'), 'dir': tmp_path}


@pytest.fixture
def lock(tmp_path):
    spec = {'name': 'abc', 'path': str(tmp_path / 'locks'), 'last': True}
    yield spec
    locks.release(spec['name'])


def publish(paths, image, lock=None):
    return Publish('publish').execute(image=image, base=paths['base'],
                                      lock=lock)


def test_rename_then_idempotent(paths, lock):
    with open(paths['converted'], 'wb') as f:
        f.write(b'disk')
    image = {'converted': True, 'path': paths['converted'], 'format': 'raw'}
    result = publish(paths, image, lock)
    assert result == {'path': paths['base'], 'format': 'raw'}
    assert json.loads(json.dumps(result)) == result
    assert sorted(os.listdir(paths['dir'])) == ['abc', 'locks']
    assert open(paths['base'], 'rb').read() == b'disk'
    assert not locks.is_held('abc')
    # Run again, as after a crash that followed the rename.
    assert publish(paths, image, lock) == result
    assert open(paths['base'], 'rb').read() == b'disk'


def test_cached_base_untouched(paths):
    with open(paths['base'], 'wb') as f:
        f.write(b'cached')
    image = {'converted': False, 'path': paths['base'], 'format': 'qcow2'}
    assert publish(paths, image) == {'path': paths['base'],
                                     'format': 'qcow2'}
    assert open(paths['base'], 'rb').read() == b'cached'


def test_nothing_to_publish_releases_lock(paths, lock):
    image = {'converted': True, 'path': paths['converted'], 'format': 'raw'}
    with pytest.raises(exception.RunError, match='neither it nor'):
        publish(paths, image, lock)
    assert not locks.is_held('abc')


def test_revert_keeps_base_and_releases_lock(paths, lock):
    with open(paths['base'], 'wb') as f:
        f.write(b'disk')
    locks.enter(lock)
    Publish('publish').revert(result={'path': paths['base']},
                              image={'path': paths['converted']},
                              base=paths['base'], lock=lock)
    assert os.path.exists(paths['base'])
    assert not locks.is_held('abc')


def test_describe():
    task = Publish('publish', inject={'base': '$B/h', 'lock': {'name': 'h'}},
                   wire={'image': 'convert'})
    shown = task.describe()
    assert shown['command'] is None
    assert shown['creates'] == ['$B/h']
    assert shown['removes'] == ['<path of convert>']
    assert shown['notes'][0].startswith('mv <path of convert> h ')
    assert json.loads(json.dumps(shown)) == shown


@pytest.mark.parametrize('planted, doing', [
    ('abc', 'rename over it'),
    ('abc.converted', 'publish it'),
])
def test_a_planted_link_is_refused(paths, planted, doing):
    victim = paths['dir'] / 'victim'
    victim.write_bytes(b'keep')
    if planted == 'abc':
        with open(paths['converted'], 'wb') as f:
            f.write(b'image')
    os.symlink(victim, paths['dir'] / planted)

    with pytest.raises(exception.ImagepipeError,
                       match=f'{planted} is a symbolic link: refusing to '
                             f'{doing}$'):
        publish(paths, {'path': paths['converted'], 'format': 'raw'})

    assert victim.read_bytes() == b'keep'
    assert os.path.islink(paths['dir'] / planted)
