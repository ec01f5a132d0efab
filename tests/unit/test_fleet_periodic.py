"""The conductor's image cache manager interval, read from a real config
file under each release's spelling."""

import pytest

from imagepipe.conf import loader
from imagepipe.fleet import periodic


@pytest.mark.parametrize('release, text, want', [
    ('essex', '', (41 * 60, 40)),                    # the default, ticks
    ('folsom', '', (None, 0)),                       # off by default
    ('grizzly', '', (2400, 2400)),
    ('grizzly', 'image_cache_manager_interval = 0', (None, 0)),
    ('juno', 'image_cache_manager_interval = -1', (None, -1)),
    ('gazpacho', '[image_cache]\nmanager_interval = 0', (60, 0)),
    ('gazpacho', '[image_cache]\nmanager_interval = -1', (None, -1)),
    ('gazpacho', 'image_cache_manager_interval = 7', (7, 7)),  # old name
])
def test_interval_of(tmp_path, release, text, want):
    conf = tmp_path / 'nova.conf'
    conf.write_text(f'[DEFAULT]\ninstances_path = {tmp_path}\n'
                    f'state_path = {tmp_path}\n{text}\n')
    rconf = loader.load([str(conf)], release=release)
    assert periodic.interval_of(rconf) == want
