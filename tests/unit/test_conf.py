"""Release-aware configuration, read from real .conf files."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from imagepipe import exception
from imagepipe import flows
from imagepipe.cache import flow as cache_flow
from imagepipe.cache import manager
from imagepipe.cache import policy as cache_policy
from imagepipe.cmd import main
from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import releases
from imagepipe.conf import settings
from imagepipe.runner import store

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
HAVANA_ALL = os.path.join(ROOT, 'tests', 'fixtures',
                          'nova-havana-all-options.conf')


@pytest.fixture
def conf_file(tmp_path):
    def write(text, name='nova.conf'):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def snap(files, release=None, **kw):
    return settings.snapshot(loader.load(files, release=release, **kw))


def test_options_exist_only_in_their_releases():
    assert 'preallocate_images' not in [
        o.key for o in options.for_release('folsom')]
    assert 'preallocate_images' in [
        o.key for o in options.for_release('grizzly')]
    assert 'images_type' not in [o.key for o in options.for_release('essex')]
    s = snap([], 'essex')
    assert s['images_type'] is None and s['preallocate_images'] is None
    assert s['images_type_effective'] == 'qcow2'


@pytest.mark.parametrize('release,expected', [
    ('folsom', 'lvm'), ('havana', 'lvm'), ('icehouse', 'lvm'),
    ('juno', 'qcow2')])
def test_old_images_type_name_per_release(conf_file, release, expected):
    path = conf_file('[DEFAULT]\nlibvirt_images_type = lvm\n'
                     'libvirt_images_volume_group = vg0\n')
    rconf = loader.load([path], release=release)
    assert settings.snapshot(rconf)['images_type_effective'] == expected
    if release == 'juno':
        assert any('libvirt_images_type' in w and 'ignored' in w
                   for w in rconf.warnings)
    else:
        assert rconf.warnings == []


def test_icehouse_alias_logs_oslo_deprecation(conf_file):
    path = conf_file('[DEFAULT]\nlibvirt_images_type = raw\n')
    rconf = loader.load([path], release='icehouse')
    assert rconf.value('images_type') == 'raw'
    assert rconf.source('images_type').endswith(
        '[DEFAULT] libvirt_images_type (deprecated name)')
    # oslo.config warns once per process, so look at a fresh one.
    p = _cli('--config-file', path, '--release', 'icehouse', 'config')
    assert p.returncode == 0
    assert ('Option "libvirt_images_type" from group "DEFAULT" is '
            'deprecated') in p.stderr


def test_new_name_wins_in_the_same_file(conf_file):
    path = conf_file('[DEFAULT]\nlibvirt_images_type = lvm\n'
                     '[libvirt]\nimages_type = raw\n')
    rconf = loader.load([path], release='icehouse')
    assert rconf.value('images_type') == 'raw'
    assert rconf.source('images_type') == f'{path} [libvirt] images_type'


def test_across_files_the_last_file_wins_even_with_the_old_name(conf_file):
    """oslo.config's actual rule: file order beats name age."""
    new = conf_file('[libvirt]\nimages_type = raw\n', 'a.conf')
    old = conf_file('[DEFAULT]\nlibvirt_images_type = qcow2\n', 'b.conf')
    assert loader.load([new, old], release='icehouse').value(
        'images_type') == 'qcow2'
    assert loader.load([old, new], release='icehouse').value(
        'images_type') == 'raw'


@pytest.mark.parametrize('use_cow,images_type,expected', [
    ('true', 'default', 'qcow2'), ('false', 'default', 'raw'),
    ('false', 'qcow2', 'qcow2'), ('true', 'raw', 'raw')])
def test_effective_images_type(conf_file, use_cow, images_type, expected):
    path = conf_file(f'[DEFAULT]\nuse_cow_images = {use_cow}\n'
                     f'[libvirt]\nimages_type = {images_type}\n')
    assert snap([path], 'juno')['images_type_effective'] == expected


def test_essex_follows_use_cow_images_only(conf_file):
    path = conf_file('[DEFAULT]\nuse_cow_images = false\n'
                     'libvirt_images_type = qcow2\n')
    assert snap([path], 'essex')['images_type_effective'] == 'raw'


def test_real_nova_conf_with_hundreds_of_options_loads():
    rconf = loader.load([HAVANA_ALL], release='havana')
    s = settings.snapshot(rconf)
    assert s['instances_path'] == '/var/lib/nova/instances'
    assert s['image_cache_subdirectory_name'] == '_base'
    with open(HAVANA_ALL) as f:
        assert sum(1 for line in f if '=' in line) > 600


@pytest.mark.parametrize('text,release,needle', [
    ('[libvirt]\nimages_type = floppy\n', 'icehouse',
     "'floppy' for [libvirt] images_type"),
    ('[DEFAULT]\nlibvirt_images_type = floppy\n', 'havana',
     "'floppy' for [DEFAULT] libvirt_images_type"),
    ('[DEFAULT]\nuse_cow_images = maybe\n', 'juno',
     "'maybe' for [DEFAULT] use_cow_images"),
    ('[libvirt]\nvolume_clear = burn\n', 'juno', 'none, zero, shred'),
])
def test_invalid_value_is_one_clear_error(conf_file, text, release, needle):
    path = conf_file(text)
    with pytest.raises(exception.ConfigError) as e:
        snap([path], release)
    msg = str(e.value)
    assert needle in msg and path in msg and 'accepted values' in msg
    assert '\n' not in msg


def test_rbd_only_accepted_from_havana(conf_file):
    path = conf_file('[DEFAULT]\nlibvirt_images_type = rbd\n')
    assert snap([path], 'havana')['images_type'] == 'rbd'
    with pytest.raises(exception.ConfigError):
        snap([path], 'grizzly')


def test_release_from_file_and_command_line(conf_file):
    path = conf_file('[imagepipe]\nrelease = folsom\n')
    assert loader.load([path]).release == 'folsom'
    assert loader.load([path], release='grizzly').release == 'grizzly'
    assert loader.load([]).release == releases.newest()


def test_unknown_release_lists_known_ones():
    with pytest.raises(exception.ConfigError) as e:
        loader.load([], release='kilo')
    assert 'essex' in str(e.value) and 'juno' in str(e.value)


def test_config_dir_files_are_read(tmp_path):
    d = tmp_path / 'nova.conf.d'
    d.mkdir()
    (d / '10-cow.conf').write_text('[DEFAULT]\nuse_cow_images = false\n')
    assert snap([], 'juno', config_dir=str(d))['use_cow_images'] is False


def test_juno_glance_group_and_old_names(conf_file):
    path = conf_file('[DEFAULT]\nglance_host = g.example\n'
                     'glance_protocol = https\n')
    s = snap([path], 'juno')
    assert s['glance_endpoints'] == ['https://g.example:9292']
    s = snap([path], 'essex')
    assert s['glance_protocol'] is None
    assert s['glance_endpoints'] == ['http://g.example:9292']


def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main', *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_config_command_json_names_sources(conf_file):
    path = conf_file('[DEFAULT]\nlibvirt_images_type = raw\n')
    p = _cli('--config-file', path, '--release', 'icehouse', 'config',
             '--format', 'json')
    assert p.returncode == 0, p.stderr
    rows = {r['option']: r for r in json.loads(p.stdout)}
    assert rows['[libvirt] images_type']['value'] == 'raw'
    assert 'deprecated name' in rows['[libvirt] images_type']['source']
    assert rows['[DEFAULT] use_cow_images']['source'] == 'default'
    assert rows['[imagepipe] release']['source'] == 'command line'


@pytest.mark.parametrize('args,needle', [
    (['--release', 'kilo', 'config'], "unknown release 'kilo'"),
    (['--config-file', '/nonexistent.conf', 'config'], 'nonexistent.conf'),
])
def test_cli_errors_exit_2_in_one_line(args, needle):
    p = _cli(*args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert 'Traceback' not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_cli_bad_value_exit_2(conf_file):
    path = conf_file('[libvirt]\nimages_type = floppy\n')
    p = _cli('--config-file', path, 'config')
    assert p.returncode == 2 and 'floppy' in p.stderr and path in p.stderr


def test_cli_ignores_nova_logging_options(conf_file, tmp_path):
    log = tmp_path / 'nova-compute.log'
    path = conf_file(f'[DEFAULT]\nlog_file = {log}\nlog_config = /nope\n')
    p = _cli('--config-file', path, 'config')
    assert p.returncode == 0, p.stderr
    assert not log.exists()


def test_sample_config_is_current(tmp_path):
    out = tmp_path / 'sample.conf'
    subprocess.run(['oslo-config-generator', '--namespace', 'imagepipe',
                    '--wrap-width', '79', '--output-file', str(out)],
                   check=True, cwd=ROOT,
                   env={**os.environ, 'PATH': os.path.dirname(sys.executable)
                        + os.pathsep + os.environ['PATH']})
    with open(os.path.join(ROOT, 'etc', 'imagepipe',
                           'imagepipe.conf.sample')) as f:
        committed = f.read()
    assert out.read_text() == committed, (
        'etc/imagepipe/imagepipe.conf.sample is stale: run tox -e genconfig')


def test_main_returns_2_for_usage(capsys):
    assert main.main(['--release', 'kilo', 'config']) == 2


# -- every option read reaches the flow, or says it has no effect ----------

#: the value each option of type str or list is changed to; bool and int
#: options flip or grow by one
CHANGED = {
    'state_path': '/srv/elsewhere', 'instances_path': '/srv/instances',
    'images_type': 'raw', 'images_volume_group': 'vg9',
    'preallocate_images': 'space', 'image_cache_subdirectory_name': '_cache',
    'volume_clear': 'shred', 'my_ip': '192.0.2.7',
    'glance_host': 'glance.example', 'glance_protocol': 'https',
    'glance_api_servers': 'http://glance2.example:9292',
    'vmdk_allowed_types': 'streamOptimized',
    'image_info_filename_pattern': '/srv/records/%(image)s.json',
    'host': 'compute-7', 'jobboard_connection': 'redis://127.0.0.1:6390',
}

#: what an option needs around it to matter: other options, the image
LVM = {'images_type': 'lvm', 'images_volume_group': 'vg0'}
GLANCE_IMAGE = '6b1b4c5e-0a3e-4d59-9a51-3f1ad0d6d2a1'
REMOVING = {'remove_unused_base_images': 'true'}
#: when the cache pass below runs; its bases are exactly as old as the
#: default minimum ages
NOW = 2_000_000_000
CONTEXT = {
    'images_volume_group': (LVM, None),
    'sparse_logical_volumes': (LVM, None),
    'volume_clear': (LVM, None), 'volume_clear_size': (LVM, None),
    'my_ip': ({}, GLANCE_IMAGE), 'glance_host': ({}, GLANCE_IMAGE),
    'glance_port': ({}, GLANCE_IMAGE), 'glance_protocol': ({}, GLANCE_IMAGE),
    'glance_api_servers': ({}, GLANCE_IMAGE),
    'glance_api_insecure': ({}, GLANCE_IMAGE),
    'glance_num_retries': ({}, GLANCE_IMAGE),
    # the cache pass removes nothing unless asked to
    'remove_unused_original_minimum_age_seconds': (REMOVING, None),
    'remove_unused_resized_minimum_age_seconds': (REMOVING, None),
    'image_info_filename_pattern': (REMOVING, None),
}


def _changed(opt, release):
    default = opt.attribute('default', release)
    if opt.type == 'bool':
        return str(not default).lower()
    if opt.type == 'int':
        return str(default + 1)
    return CHANGED[opt.key]


def _flow_inputs(tmp_path, release, values, image):
    """The settings snapshot, and each step's injected arguments and plan,
    of ``release`` under a config that sets ``values`` (by option key)."""
    lines = []
    for key, value in values.items():
        own = options.BY_KEY[key].spelling_in(release)
        lines.append(f'[{own.group}]\n{own.name} = {value}\n')
    path = tmp_path / f'{release}-{len(list(tmp_path.iterdir()))}.conf'
    path.write_text(''.join(lines))
    snapshot = snap([str(path)], release)
    flow = flows.factory(release, snapshot, {
        'image': image or '/images/cirros.qcow2', 'instance': 'vm1',
        'root_gb': 1, 'ephemeral_gb': 0, 'swap_mb': 0})
    steps = [(a.name, a.inject, a.describe()) for a in store.atoms(flow)]
    steps.append(_cache_pass(tmp_path / f'cache-{release}', release,
                             snapshot))
    return snapshot, json.dumps(steps, sort_keys=True, default=str)


def _cache_pass(instances, release, snapshot):
    """What ``cache clean`` would do to an unused original and resized base
    exactly as old as the release's default minimum ages."""
    base = instances / '_base'
    shutil.rmtree(instances, ignore_errors=True)
    base.mkdir(parents=True)
    for name, opt in (('a' * 40, 'remove_unused_original_minimum_age_seconds'),
                      ('a' * 40 + '_10',
                       'remove_unused_resized_minimum_age_seconds')):
        (base / name).write_bytes(b'x')
        age = options.BY_KEY[opt].attribute('default', release)
        os.utime(base / name, (NOW - age, NOW - age))
    settings = {**snapshot, 'instances_path': str(instances),
                'image_cache_subdirectory_name': '_base'}
    policy = cache_policy.for_release(release)
    _, entries, _ = manager.scan(release, policy, settings, [], now=NOW)
    decided = manager.decide(entries, settings)
    request = cache_flow.request_for(release, release, settings, str(base),
                                     decided)
    return [(e['name'], e['action']) for e in decided], request


@pytest.mark.parametrize('release', releases.RELEASES)
def test_every_option_reaches_the_flow_or_says_it_has_none(tmp_path,
                                                            release):
    """Changing an option changes the settings snapshot and the flow the
    release builds (a step's injected arguments or its plan); an option
    marked as having no effect leaves the flow as it was, and ``config``
    says so."""
    rows = {r['key']: r for r in loader.load([], release=release).items()}
    for opt in options.for_release(release):
        around, image = CONTEXT.get(opt.key, ({}, None))
        around = {k: v for k, v in around.items()
                  if options.BY_KEY[k].spelling_in(release)}
        if opt.key in around:
            continue                      # only with its context: see LVM
        before = _flow_inputs(tmp_path, release, around, image)
        after = _flow_inputs(tmp_path, release,
                             {**around, opt.key: _changed(opt, release)},
                             image)
        assert before[0] != after[0], opt.key
        ignored = opt.attribute('ignored', release)
        if ignored or opt.read_by:
            assert before[1] == after[1], opt.key
            assert rows[opt.key]['note'] == loader.note_of(opt, release)
            assert rows[opt.key]['note'].startswith(
                'read, no effect in imagepipe: ' if ignored else 'read by ')
        else:
            assert before[1] != after[1], (
                f'{release}: {opt.key} changes no flow input and is not '
                'marked as having no effect')
            assert rows[opt.key]['note'] is None
