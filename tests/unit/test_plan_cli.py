"""``imagepipe plan`` and ``imagepipe releases``, through the command line.

Every test calls :func:`imagepipe.cmd.main.main` in-process and reads what it
printed. A plan runs no tool and touches no disk, so these tests hide every
tool and check that instances_path is never created.
"""

import hashlib
import json
import subprocess

import pytest
from stevedore import extension

from imagepipe import flows
from imagepipe.cmd import main
from imagepipe.flows import release as release_mod

IMAGE = 'http://glance/cirros.qcow2'
HEX = hashlib.sha1(IMAGE.encode()).hexdigest()
RELEASES = ['essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno',
            'gazpacho']
REQUEST = ['--image', IMAGE, '--instance', 'vm1', '--root-gb', '10']
FOLSOM_STEPS = ['root-fetch', 'root-inspect', 'root-convert', 'root-publish',
                'root-copy-base', 'root-resize-base', 'root-resize-fs-base',
                'root-overlay', 'verify']


@pytest.fixture
def instances(tmp_path):
    return tmp_path / 'instances'


@pytest.fixture
def nova_conf(tmp_path, instances):
    """Write a nova.conf with instances_path in tmp_path; return its path."""
    def write(text=''):
        path = tmp_path / 'nova.conf'
        path.write_text(f'[DEFAULT]\ninstances_path = {instances}\n{text}')
        return str(path)
    return write


@pytest.fixture
def no_tools(tmp_path, monkeypatch):
    """An empty PATH, and any attempt to start a process fails the test."""
    empty = tmp_path / 'empty-bin'
    empty.mkdir()
    monkeypatch.setenv('PATH', str(empty))

    def refuse(*args, **kwargs):
        raise AssertionError(f'a plan started a process: {args[0]!r}')
    monkeypatch.setattr(subprocess.Popen, '__init__', refuse)


def run(capsys, *argv):
    code = main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures('no_tools')
def test_plan_table(capsys, nova_conf, instances):
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'folsom', 'plan', *REQUEST)
    assert (code, err) == (0, '')
    lines = out.splitlines()
    assert lines[0] == ('folsom: images type qcow2, force_raw_images=True, '
                        f'image {IMAGE}')
    headings = [line.split()[1] for line in lines
                if line[:3].strip().rstrip('.').isdigit()]
    assert headings == FOLSOM_STEPS
    assert f' 1. root-fetch  (images.fetch)  [lock {HEX}]' in lines
    assert (f'      $ cp --sparse=always --reflink=auto {instances}/_base/'
            f'{HEX} {instances}/_base/{HEX}_10.tmp') in lines
    assert '      $ (in-process step)' in lines          # root-publish
    assert not instances.exists()


@pytest.mark.usefixtures('no_tools')
def test_plan_json_is_the_list_of_steps(capsys, nova_conf, instances):
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'folsom', 'plan', *REQUEST,
                         '--format', 'json')
    assert (code, err) == (0, '')
    steps = json.loads(out)
    assert [s['name'] for s in steps] == FOLSOM_STEPS
    assert set(steps[0]) == {'name', 'command', 'source', 'notes', 'creates',
                             'removes', 'lock'}
    assert steps[-2]['command'][:4] == ['qemu-img', 'create', '-f', 'qcow2']
    assert steps[-2]['lock'] == f'{instances}/_base/{HEX}'
    assert steps[-1]['command'] is None and steps[-1]['lock'] is None
    assert steps[-1]['notes'][-1] == (
        f'{instances}/vm1/disk: qcow2, at least {10 * 1024 ** 3} bytes')
    assert not instances.exists()


@pytest.mark.usefixtures('no_tools')
def test_plan_dot(capsys, nova_conf, instances):
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'folsom', 'plan', *REQUEST,
                         '--format', 'dot')
    assert (code, err) == (0, '')
    assert out.startswith('strict digraph "folsom-qcow2" {')
    for before, after in zip(FOLSOM_STEPS, FOLSOM_STEPS[1:]):
        assert f'"{before}==1.0" -> "{after}==1.0"' in out
    # each lock box says what the lock guards and which lock it is
    assert f'label="fetch lock:\\n{HEX}"' in out
    assert f'label="copy lock:\\n{instances}/_base/{HEX}"' in out
    assert not instances.exists()


@pytest.mark.usefixtures('no_tools')
def test_plan_dot_a_lock_taken_again_is_a_box_of_its_own(capsys, nova_conf):
    """Icehouse's raw backend took the fetch lock $hex, released it, and
    took $hex again to copy: two boxes, not one."""
    conf = nova_conf('use_cow_images = false\n')
    code, out, err = run(capsys, '--config-file', conf, '--release',
                         'icehouse', 'plan', *REQUEST, '--format', 'dot')
    assert code == 0
    assert out.count('subgraph cluster_') == 2
    assert f'label="fetch lock:\\n{HEX}"' in out
    assert f'label="copy lock:\\n{HEX}"' in out


def _boxes(layout):
    """{gvid: (x0, y0, x1, y1)} of every node of a ``dot -Tjson`` layout,
    and of every cluster caption drawn by graphviz itself."""
    boxes = {}
    for o in layout['objects']:
        if 'pos' in o:
            x, y = map(float, o['pos'].split(','))
            w, h = float(o['width']) * 36, float(o['height']) * 36
            boxes[o['_gvid']] = (x - w, y - h, x + w, y + h)
        if o.get('lp'):
            x, y = map(float, o['lp'].split(','))
            w, h = float(o['lwidth']) * 36, float(o['lheight']) * 36
            boxes[('caption', o['_gvid'])] = (x - w, y - h, x + w, y + h)
    return boxes


def _curve(pos):
    """Points along the B-spline of an edge's ``pos``."""
    points = [tuple(map(float, p.split(','))) for p in pos.split()
              if not p.startswith(('e,', 's,'))]
    for i in range(0, len(points) - 3, 3):
        p0, p1, p2, p3 = points[i:i + 4]
        for k in range(21):
            t = k / 20
            yield tuple((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b
                        + 3 * (1 - t) * t ** 2 * c + t ** 3 * d
                        for a, b, c, d in zip(p0, p1, p2, p3))


@pytest.mark.parametrize('release', RELEASES)
@pytest.mark.parametrize('images_type', ['qcow2', 'raw'])
def test_plan_dot_no_arrow_crosses_a_box_or_caption(
        capsys, nova_conf, release, images_type):
    conf = nova_conf('use_cow_images = false\n'
                     if images_type == 'raw' else '')
    code, out, err = run(capsys, '--config-file', conf, '--release', release,
                         'plan', *REQUEST, '--ephemeral-gb', '1',
                         '--swap-mb', '64', '--format', 'dot')
    assert code == 0
    assert 'fetch lock:' in out
    layout = json.loads(subprocess.run(
        ['dot', '-Tjson'], input=out, capture_output=True, text=True,
        check=True).stdout)
    boxes = _boxes(layout)
    for edge in layout['edges']:
        if edge.get('style') == 'invis':
            continue
        others = {k: b for k, b in boxes.items()
                  if k not in (edge['tail'], edge['head'])}
        for x, y in _curve(edge['pos']):
            for key, (x0, y0, x1, y1) in others.items():
                assert not (x0 + 1 < x < x1 - 1 and y0 + 1 < y < y1 - 1), (
                    edge['tail'], edge['head'], key)


@pytest.mark.usefixtures('no_tools')
@pytest.mark.parametrize('release', RELEASES)
def test_every_release_plans_without_tools_or_disk(capsys, nova_conf,
                                                   instances, release):
    code, out, err = run(capsys, '--config-file', nova_conf(), '--release',
                         release, 'plan', *REQUEST, '--ephemeral-gb', '1',
                         '--swap-mb', '64', '--format', 'json')
    assert (code, err) == (0, '')
    assert json.loads(out)[0]['name'] == 'root-fetch'
    assert not instances.exists()


@pytest.mark.usefixtures('no_tools')
@pytest.mark.parametrize('fmt', ['table', 'json', 'dot'])
def test_wrong_disk_format_warning_on_stderr(capsys, nova_conf, fmt):
    conf = nova_conf('force_raw_images = false\nuse_cow_images = false\n')
    code, out, err = run(capsys, '--config-file', conf, '--release',
                         'folsom', 'plan', *REQUEST, '--format', fmt)
    assert code == 0
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith('imagepipe: warning: folsom: ')
    assert 'LP#1163009' in lines[0] and 'does not boot' in lines[0]
    assert 'LP#1163009' not in out
    if fmt == 'json':
        assert isinstance(json.loads(out), list)


@pytest.mark.usefixtures('no_tools')
def test_no_warning_once_nova_probed_the_format(capsys, nova_conf):
    conf = nova_conf('force_raw_images = false\nuse_cow_images = false\n')
    code, _, err = run(capsys, '--config-file', conf, '--release',
                       'grizzly', 'plan', *REQUEST)
    assert (code, err) == (0, '')


def test_unknown_release_exit_2_one_line(capsys, nova_conf):
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'kilo', 'plan', *REQUEST)
    assert code == 2 and out == ''
    assert err.count('\n') == 1
    assert err.startswith("imagepipe: error: unknown release 'kilo'")


@pytest.mark.parametrize('release,text', [
    ('folsom', 'libvirt_images_type = lvm\n'),
    ('icehouse', '[libvirt]\nimages_type = lvm\n'),
])
def test_lvm_without_volume_group_exit_2(capsys, nova_conf, instances,
                                         release, text):
    code, out, err = run(capsys, '--config-file', nova_conf(text),
                         '--release', release, 'plan', *REQUEST)
    assert code == 2 and out == ''
    assert err.count('\n') == 1 and 'images_volume_group' in err
    assert not instances.exists()


def test_lvm_with_volume_group_plans(capsys, nova_conf):
    conf = nova_conf('[libvirt]\nimages_type = lvm\n'
                     'images_volume_group = nova-vg\n')
    code, out, err = run(capsys, '--config-file', conf, '--release', 'juno',
                         'plan', *REQUEST, '--format', 'json')
    assert (code, err) == (0, '')
    assert json.loads(out)[-2]['command'] == [
        ['e2fsck', '-fp', '/dev/nova-vg/vm1_disk'],
        ['resize2fs', '/dev/nova-vg/vm1_disk']]


# -- releases ----------------------------------------------------------------

def test_releases_json(capsys):
    code, out, err = run(capsys, 'releases', '--format', 'json')
    assert (code, err) == (0, '')
    rows = json.loads(out)
    assert [r['name'] for r in rows] == RELEASES
    assert rows[1] == {'name': 'folsom', 'nova_tag': '2012.2.4',
                       'date': '2012-09-27',
                       'options': ['use_cow_images', 'force_raw_images',
                                   'libvirt_images_type']}


def test_releases_table(capsys):
    code, out, err = run(capsys, 'releases')
    assert (code, err) == (0, '')
    lines = out.splitlines()
    assert lines[0].split()[:3] == ['RELEASE', 'NOVA', 'TAG']
    assert [line.split()[0] for line in lines[2:]
            if not line.startswith(' ')] == RELEASES      # rows wrap
    assert all(len(line) <= 100 for line in lines)


KILO = release_mod.Release(
    name='kilo', nova_tag='2015.1.0', date='2015-04-30',
    options=('use_cow_images', 'force_raw_images', '[libvirt] images_type'),
    traits=release_mod.Traits(
        copy_lock_is_path=False, max_size_check=True,
        overlay_cluster_size='inherit', extend_overlay=True,
        overlay_fs_resize='nbd-option', fs_resize='strict',
        preallocation=True, volume_clear_option=True, disk_info='atomic',
        ephemeral_mkfs=('mkfs', '-t', 'ext3')),
    conf_release='juno')


@pytest.fixture
def with_kilo(monkeypatch):
    """The installed releases plus one from 'another distribution'."""
    installed = [extension.Extension(name, None, plugin, None)
                 for name, plugin in flows.registered().items()]
    manager = extension.ExtensionManager.make_test_instance(
        installed + [extension.Extension('kilo', None, KILO, None)],
        namespace=flows.NAMESPACE)
    monkeypatch.setattr(flows, '_manager', manager)


@pytest.mark.usefixtures('with_kilo', 'no_tools')
def test_a_release_from_another_distribution(capsys, nova_conf, instances):
    code, out, err = run(capsys, 'releases', '--format', 'json')
    assert (code, err) == (0, '')
    rows = json.loads(out)
    # ordered by date: between Juno and today's Nova
    assert [r['name'] for r in rows] == (
        RELEASES[:-1] + ['kilo'] + RELEASES[-1:])
    assert rows[-2]['nova_tag'] == '2015.1.0'
    # planned from the command line, reading the options Juno read
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'kilo', 'plan', *REQUEST,
                         '--format', 'json')
    assert (code, err) == (0, '')
    steps = json.loads(out)
    assert steps[0]['name'] == 'root-fetch'
    assert steps[-2]['command'][:2] == ['qemu-img', 'resize']
    code, out, err = run(capsys, '--config-file', nova_conf(),
                         '--release', 'kilo', 'config', '--format', 'json')
    rows = {r['option']: r['value'] for r in json.loads(out)}
    assert rows['[imagepipe] release'] == 'kilo'
    assert '[libvirt] images_type' in rows
