import json
import os
import shutil

import pytest
from taskflow.types import failure

from imagepipe import exception
from imagepipe.tasks import content
from imagepipe.tasks import locks
from imagepipe.tasks.fetch import Fetch
from imagepipe.tasks.inspect import Inspect
from tests import images

MiB = images.MiB

VMDK_FLAT_HOST_FILE = '''# Disk DescriptorFile
version=1
CID=fffffffe
parentCID=ffffffff
createType="monolithicFlat"

# Extent description
RW 2048 FLAT "/etc/hostname" 0

# The Disk Data Base
#DDB
ddb.virtualHWVersion = "4"
'''


@pytest.fixture(scope='module')
def hostile(tmp_path_factory, raw_image):
    """Images an inspection must refuse, by name."""
    d = tmp_path_factory.mktemp('hostile')
    made = {}
    made['backing'] = str(d / 'backing.qcow2')
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', raw_image,
              '-F', 'raw', made['backing'])
    made['data_file'] = str(d / 'datafile.qcow2')
    images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
              f'data_file={d / "data.bin"}', made['data_file'], '1M')
    made['vmdk_flat'] = str(d / 'flat.vmdk')
    (d / 'flat.vmdk').write_text(VMDK_FLAT_HOST_FILE)
    full = images.make_ext4(str(d / 'random.raw'), 16,
                            {'random.bin': os.urandom(3 * MiB)})
    big = images.convert(full, str(d / 'random.qcow2'), 'qcow2')
    made['truncated'] = str(d / 'truncated.qcow2')
    with open(big, 'rb') as src, open(made['truncated'], 'wb') as dst:
        dst.write(src.read(300 * 1000))
    made['cut_last_cluster'] = cut(big, str(d / 'cut.qcow2'), 1000)
    packed = images.convert(full, str(d / 'random.zqcow2'), 'qcow2',
                            compress=True)
    made['cut_compressed'] = cut(packed, str(d / 'cut.zqcow2'), 4096)
    for name, size in (('empty', 0), ('one_byte', 1), ('short', 511)):
        made[name] = str(d / f'{name}.raw')
        with open(made[name], 'wb') as f:
            f.write(b'\xeb' * size)
    made['zeros'] = str(d / 'zeros.raw')
    with open(made['zeros'], 'wb') as f:
        f.write(bytes(3 * MiB))
    made['vmdk_sparse'] = images.convert(raw_image, str(d / 'sparse.vmdk'),
                                         'vmdk')
    made['gpt'] = str(d / 'gpt.raw')
    with open(made['gpt'], 'wb') as f:
        f.truncate(4 * MiB)
    images.sh('sh', '-c', f"printf 'label: gpt\\n,,L\\n' | "
              f"sfdisk -q {made['gpt']}")
    return made


def cut(src, dest, short_by):
    """``src`` less its last ``short_by`` bytes (inside its last cluster)."""
    with open(src, 'rb') as f, open(dest, 'wb') as out:
        out.write(f.read()[:-short_by])
    return dest


def fetch_then_inspect(image, cache, lock=None, **args):
    """Fetch ``image`` and inspect it; on rejection revert both tasks."""
    fetch_args = {'image': image, 'glance': None, 'part': cache['part'],
                  'base': cache['base'], 'lock': lock}
    fetched = Fetch('fetch').execute(**fetch_args)
    inspect_args = {'fetched': fetched, 'part': cache['part'],
                    'base': cache['base'], 'max_size': None,
                    'expected_format': None, 'vmdk_allowed_types': None,
                    'lock': lock, **args}
    try:
        return Inspect('inspect').execute(**inspect_args)
    except Exception as e:
        failed = failure.Failure.from_exception(e)
        Inspect('inspect').revert(result=failed, **inspect_args)
        Fetch('fetch').revert(result=fetched, **fetch_args)
        raise


def test_qcow2(qcow2_image, cache):
    result = fetch_then_inspect(qcow2_image, cache)
    assert result == {'cached': False, 'path': cache['part'],
                      'format': 'qcow2', 'virtual_size': 64 * MiB,
                      'cluster_size': 65536}
    assert json.loads(json.dumps(result)) == result


def test_compressed_qcow2_declared(compressed_qcow2_image, cache):
    result = fetch_then_inspect(compressed_qcow2_image, cache,
                                expected_format='qcow2')
    assert result['format'] == 'qcow2'


def test_raw(raw_image, cache):
    result = fetch_then_inspect(raw_image, cache, expected_format='raw')
    assert (result['format'], result['virtual_size']) == ('raw', 64 * MiB)


def test_gpt_declared_raw(hostile, cache):
    result = fetch_then_inspect(hostile['gpt'], cache, expected_format='raw')
    assert result['format'] == 'raw'


def test_vmdk_allowed_by_default(hostile, cache):
    assert fetch_then_inspect(hostile['vmdk_sparse'], cache)['format'] == \
        'vmdk'


def test_cached_base_is_only_measured(qcow2_image, cache, lock):
    shutil.copy(qcow2_image, cache['base'])
    result = Inspect('inspect').execute(
        fetched={'cached': True, 'path': cache['base']}, part=cache['part'],
        base=cache['base'], max_size=None, expected_format='raw',
        vmdk_allowed_types=None, lock=lock)
    assert result == {'cached': True, 'path': cache['base'],
                      'format': 'qcow2', 'virtual_size': 64 * MiB,
                      'cluster_size': 65536}
    assert locks.is_held('abc')


def test_cached_base_larger_than_flavor(qcow2_image, cache):
    shutil.copy(qcow2_image, cache['base'])
    with pytest.raises(exception.FlavorDiskTooSmall):
        Inspect('inspect').execute(
            fetched={'cached': True, 'path': cache['base']},
            part=cache['part'], base=cache['base'], max_size=MiB,
            expected_format=None, vmdk_allowed_types=None, lock=None)
    assert os.path.exists(cache['base'])


@pytest.mark.parametrize('name, args, reason', [
    ('backing', {}, r'safety check \(backing_file\)'),
    ('data_file', {}, r'safety check \(data_file\)'),
    ('vmdk_flat', {}, r'safety check \(descriptor\)'),
    ('truncated', {}, r'qemu-img check exit status 2: [1-9]\d* corruptions'),
    ('cut_last_cluster', {}, r'truncated: the data cluster of guest byte '
     r'\d+ ends at byte \d+, the file at byte \d+$'),
    ('cut_compressed', {}, 'truncated: the compressed cluster of guest byte'),
    ('empty', {}, 'too small: 0 bytes, less than one 512-byte sector'),
    ('one_byte', {}, 'too small: 1 bytes, less than one 512-byte sector'),
    ('short', {}, 'too small: 511 bytes, less than one 512-byte sector'),
    ('zeros', {}, 'no content: every byte is zero'),
    ('zeros', {'expected_format': 'raw'}, 'no content: every byte is zero'),
    ('vmdk_sparse', {'vmdk_allowed_types': ['streamOptimized']},
     'Invalid VMDK create-type specified: monolithicSparse'),
    ('vmdk_sparse', {'vmdk_allowed_types': []},
     'Invalid VMDK create-type specified'),
])
def test_hostile_rejected(hostile, cache, lock, name, args, reason):
    with pytest.raises(exception.ImageUnacceptable, match=reason) as err:
        fetch_then_inspect(hostile[name], cache, lock, **args)
    assert cache['part'] in str(err.value) and '\n' not in str(err.value)
    assert os.listdir(cache['dir']) == []
    assert not locks.is_held('abc')


@pytest.mark.parametrize('made', ['compressed', 'sub-clustered', 'empty'])
def test_qcow2_ending_inside_its_last_cluster_passes(tmp_path, raw_image,
                                                    cache, made):
    """Files shorter than qemu-img's image-end-offset that hold every
    cluster: a compressed last cluster, a partly written sub-cluster, a
    short L1 table at the end of an empty image."""
    path = str(tmp_path / 'ok.qcow2')
    if made == 'empty':
        images.sh('qemu-img', 'create', '-q', '-f', 'qcow2', path, '1G')
    else:
        images.sh('qemu-img', 'convert', '-O', 'qcow2', *{
            'compressed': ['-c'],
            'sub-clustered': ['-o', 'extended_l2=on']}[made],
            raw_image, path)
    report = json.loads(images.sh('qemu-img', 'check', '--output=json',
                                  path))
    assert os.path.getsize(path) < report['image-end-offset']
    # walked, and whole
    content.check_qcow2_extent(path, report['image-end-offset'])
    if made != 'sub-clustered':  # the format inspector refuses extended_l2
        assert fetch_then_inspect(path, cache)['format'] == 'qcow2'


def test_qcow2_declared_raw(qcow2_image, cache, lock):
    with pytest.raises(exception.ImageUnacceptable,
                       match='content is qcow2 but the disk_format is raw'):
        fetch_then_inspect(qcow2_image, cache, lock, expected_format='raw')
    assert os.listdir(cache['dir']) == []
    assert not locks.is_held('abc')


def test_declared_format_from_fetch_result(qcow2_image, cache):
    fetched = {'cached': False, 'path': cache['part'], 'disk_format': 'raw'}
    shutil.copy(qcow2_image, cache['part'])
    with pytest.raises(exception.ImageUnacceptable,
                       match='content is qcow2 but the disk_format is raw'):
        Inspect('inspect').execute(
            fetched=fetched, part=cache['part'], base=cache['base'],
            max_size=None, expected_format=None, vmdk_allowed_types=None,
            lock=None)


def test_declared_format_without_inspector(raw_image, cache):
    with pytest.raises(exception.ImageUnacceptable,
                       match='disk_format ploop has no inspector'):
        fetch_then_inspect(raw_image, cache, expected_format='ploop')


def test_larger_than_flavor(qcow2_image, cache, lock):
    with pytest.raises(exception.FlavorDiskTooSmall,
                       match="Flavor's disk is too small for requested "
                       'image: virtual size 0.1 GiB exceeds root disk 0.0 '
                       'GiB: use --root-gb 1 or more$'):
        fetch_then_inspect(qcow2_image, cache, lock, max_size=32 * MiB)
    assert os.listdir(cache['dir']) == []
    assert not locks.is_held('abc')


def test_describe():
    task = Inspect('inspect', inject={
        'part': '$B/h.part', 'base': '$B/h', 'max_size': 2**30,
        'expected_format': None, 'vmdk_allowed_types': None, 'lock': None},
        wire={'fetched': 'fetch'})
    shown = task.describe()
    assert shown['command'][1] == ['qemu-img', 'check', '--output=json',
                                   '-f', 'qcow2', '$B/h.part']
    assert shown['command'][0][:2] == ['qemu-img', 'info']
    assert any(str(2**30) in note for note in shown['notes'])
    assert json.loads(json.dumps(shown)) == shown


def test_a_part_gone_with_the_base_present_reads_as_cached(tmp_path,
                                                          raw_image):
    base = tmp_path / 'abc'
    shutil.copyfile(raw_image, base)
    result = Inspect('inspect').execute(
        fetched={'cached': False, 'path': str(tmp_path / 'abc.part'),
                 'size': 1, 'disk_format': None, 'checksum': None},
        part=str(tmp_path / 'abc.part'), base=str(base), max_size=None,
        expected_format=None, vmdk_allowed_types=None, lock=None)
    assert result['cached'] is True and result['path'] == str(base)
    assert result['format'] == 'raw'


def test_an_inspector_crash_is_a_refusal(raw_image, cache, monkeypatch):
    """The inspector parses hostile bytes: any error of its own (it has
    raised AttributeError on text files) refuses the image in one line."""
    from oslo_utils.imageutils import format_inspector

    class Broken:
        def safety_check(self):
            raise AttributeError("'VMDKInspector' object has no attribute "
                                 "'vmdktype'")

    monkeypatch.setattr(format_inspector, 'detect_file_format',
                        lambda path: Broken())
    with pytest.raises(exception.ImageUnacceptable,
                       match='the format inspector failed on it '
                             r'\(AttributeError: ') as err:
        fetch_then_inspect(raw_image, cache)
    assert '\n' not in str(err.value)
