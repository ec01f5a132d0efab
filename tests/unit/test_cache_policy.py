"""Each release's classification of the base directory and its verdicts."""

import pytest

from imagepipe.cache import manager
from imagepipe.cache import policy

H = 'c' * 40
BASE = '/var/lib/nova/instances/_base'
INFO = '/var/lib/nova/instances/_base/%(image)s.info'

NAMES = [H, f'{H}_10', f'{H}_sm', f'{H}.part', f'{H}_10.sha1',
         f'{H}_10.info', f'{H}.info', f'{H}_5'[:42], 'swap_512',
         'ephemeral_1_abcdefg', 'ephemeral_1_default', 'junk']

EXPECTED = {
    'essex': ('original', 'resized', 'resized', 'ignored', 'record',
              'resized', 'ignored', 'ignored', 'ignored', 'ignored',
              'ignored', 'ignored'),
    'folsom': ('original', 'resized', 'resized', 'ignored', 'resized',
               'record', 'ignored', 'ignored', 'ignored', 'ignored',
               'ignored', 'ignored'),
    'gazpacho': ('original', 'resized', 'resized', 'ignored', 'resized',
                 'resized', 'ignored', 'ignored', 'swap', 'ephemeral',
                 'ephemeral', 'ignored'),  # 'default' has 7 characters
}
for _r in ('grizzly', 'havana', 'icehouse', 'juno'):
    EXPECTED[_r] = EXPECTED['folsom']


@pytest.mark.parametrize('release', sorted(EXPECTED))
def test_classification(release):
    p = policy.for_release(release)
    pattern = manager.info_pattern(p, {'image_info_filename_pattern': INFO})
    got = tuple(manager.classify(n, f'{BASE}/{n}', p, pattern)
                for n in NAMES)
    assert got == EXPECTED[release]


def entry(name, kind, age, users=()):
    return {'name': name, 'path': f'{BASE}/{name}', 'kind': kind,
            'problem': None, 'age': age, 'users': list(users)}


SETTINGS = {'remove_unused_base_images': True,
            'remove_unused_original_minimum_age_seconds': 86400,
            'remove_unused_resized_minimum_age_seconds': 3600}


def test_ages_per_kind():
    decided = manager.decide([
        entry(H, 'original', 86400), entry('d' * 40, 'original', 86399),
        entry(f'{H}_1', 'resized', 3600), entry(f'{H}_2', 'resized', 3599),
        entry('swap_1', 'swap', 86400), entry('swap_2', 'swap', 3600),
    ], SETTINGS)
    assert [e['action'] for e in decided] == [
        'remove', 'keep', 'remove', 'keep', 'remove', 'keep']


def test_in_use_and_option_off_and_problems():
    users = [{'how': 'run', 'instance': 'vm1', 'run': 'r'}]
    bad = dict(entry('e' * 40, 'original', 10 ** 6), problem='symbolic link')
    decided = manager.decide([entry(H, 'original', 10 ** 6, users), bad],
                             SETTINGS)
    assert [e['action'] for e in decided] == ['in-use', 'keep']
    off = manager.decide([entry(H, 'original', 10 ** 6)],
                         {**SETTINGS, 'remove_unused_base_images': False})
    assert off[0]['action'] == 'keep'


def test_records_removed_with_their_base():
    s = {'image_info_filename_pattern': INFO}
    assert manager.record_of(policy.ESSEX, s, f'{BASE}/{H}') == \
        f'{BASE}/{H}.sha1'
    assert manager.record_of(policy.JUNO, s, f'{BASE}/{H}') == \
        f'{BASE}/{H}.info'
    assert manager.record_of(policy.GAZPACHO, s, f'{BASE}/{H}') is None


#: release -> {image_cache_manager_interval: seconds between passes}
INTERVALS = {
    # ticks of 60 s: skip the value's ticks, run on the next; a negative
    # value skips none; 0 returned at once
    'essex': {0: None, -1: 60, 1: 120, 40: 41 * 60},
    # seconds: 0 returned at once, a negative spacing was never scheduled
    'grizzly': {0: None, -1: None, 1: 1, 2400: 2400},
    # 0: the periodic task rate
    'gazpacho': {0: 60, -1: None, -5: None, 1: 1, 2400: 2400},
}
INTERVALS['folsom'] = INTERVALS['essex']
for _r in ('havana', 'icehouse', 'juno'):
    INTERVALS[_r] = INTERVALS['grizzly']


@pytest.mark.parametrize('release', sorted(INTERVALS))
def test_pass_interval(release):
    p = policy.for_release(release)
    assert {v: policy.pass_interval(p, v)
            for v in INTERVALS[release]} == INTERVALS[release]
