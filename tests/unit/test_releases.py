"""Each release module is written as its change from the release before.

The tables below are every release's effective traits and options as they
were when each module still declared its whole Traits block: written out
here as data, so rewriting a module as ``dataclasses.replace`` of the one
before cannot change what any release does.
"""

import ast
import dataclasses
import importlib
import inspect

import pytest

from imagepipe import flows
from imagepipe.flows import release as release_mod

RELEASES = ('essex', 'folsom', 'grizzly', 'havana', 'icehouse', 'juno',
            'gazpacho')

T, F = True, False
LP1163009 = ('raw', 'LP#1163009')
LP1075333 = ('lvm', 'LP#1075333')
OLD_EPH = 'ephemeral_0_{gb}_None'
EPH = 'ephemeral_{gb}_default'
MKFS = ('mkfs', '-t', 'ext3')
NO_LVM, LVM = ('raw', 'qcow2'), ('raw', 'qcow2', 'lvm')

#: trait: its value in essex, folsom, grizzly, havana, icehouse, juno and
#: gazpacho
TRAITS = {
    'file_locks': (F, T, T, T, T, T, T),
    'fetch_rechecks_in_lock': (T, T, T, T, F, T, T),
    'copy_lock_is_path': (T, T, T, T, F, F, F),
    'lvm_lock_is_path': (T, T, T, T, F, T, F),
    'base_dir_option': (T, F, T, T, T, T, T),
    'max_size_check': (F, F, T, T, T, T, F),
    'cleanup_on_error': (F, T, T, T, T, T, T),
    'resized_base': (T, T, F, F, F, F, F),
    'overlay_cluster_size': (None, None) + ('inherit',) * 5,
    'extend_overlay': (F, F, T, T, T, T, F),
    'fs_resize': ('blind',) * 3 + ('checked',) + ('strict',) * 3,
    'overlay_fs_resize': ('blind',) * 3 + ('nbd-option',) * 3 + (None,),
    'preallocation': (F, F, T, T, T, T, T),
    'disk_info': (None,) * 3 + ('append',) * 2 + ('atomic',) * 2,
    'declared_raw': ((LP1163009,), (LP1163009, LP1075333)) + ((),) * 5,
    'ephemeral_name': (OLD_EPH,) * 2 + (EPH,) * 4
                      + ('ephemeral_{gb}_0706d66',),
    'ephemeral_mkfs': ('mkfs.ext3',) * 4 + (MKFS,) * 2 + (None,),
    'resized_generated_base': (F, T, F, F, F, F, F),
    'backends': (NO_LVM,) + (LVM,) * 6,
    'lvm_write': ('convert', 'dd') + ('convert',) * 5,
    'lvm_vgs': ('size,free', 'free') + ('size,free',) * 5,
    'lvm_fs_resize': ('device',) + ('blind',) * 3 + ('device',) * 3,
    'lvm_fs_as_root': (T, F, T, T, T, T, T),
    'volume_clear_option': (F, F, F, F, T, T, T),
    'nova_inspects': (F,) * 6 + (T,),
    'reinspect_base': (F,) * 6 + (T,),
    'size_check_after_fetch': (F,) * 6 + (T,),
    'overlay_at_flavor_size': (F,) * 6 + (T,),
    'convert_pinned': (F,) * 6 + (T,),
    'overlay_backing_fmt': (F,) * 6 + (T,),
    'resize_format_pinned': (F,) * 6 + (T,),
    'preallocate_space_only': (F,) * 6 + (T,),
    'fallocate_probe_keep_size': (T,) * 6 + (F,),
    'article_notes': (T,) * 6 + (F,),
    'ephemeral_fs': (None,) * 6 + ('vfat',),
}

COW_RAW = ('use_cow_images', 'force_raw_images')
OLD_TYPE, NEW_TYPE = 'libvirt_images_type', '[libvirt] images_type'
NBD = 'resize_fs_using_block_device'
#: release: (nova_tag, date, options)
RELEASE_DATA = {
    'essex': ('2012.1.3', '2012-04-05', COW_RAW),
    'folsom': ('2012.2.4', '2012-09-27', COW_RAW + (OLD_TYPE,)),
    'grizzly': ('2013.1.5', '2013-04-04',
                COW_RAW + (OLD_TYPE, 'preallocate_images')),
    'havana': ('2013.2.4', '2013-10-17',
               COW_RAW + (OLD_TYPE, 'preallocate_images', NBD)),
    'icehouse': ('2014.1.5', '2014-04-17',
                 COW_RAW + (NEW_TYPE, 'preallocate_images', NBD)),
    'juno': ('2014.2.4', '2014-10-16',
             COW_RAW + (NEW_TYPE, 'preallocate_images', NBD)),
    'gazpacho': ('33.0.2', '2026-06-16',
                 COW_RAW + (NEW_TYPE, 'preallocate_images',
                            '[workarounds] disable_deep_image_inspection')),
}


def test_the_tables_name_every_trait():
    assert list(TRAITS) == [
        f.name for f in dataclasses.fields(release_mod.Traits)]


@pytest.mark.parametrize('index,name', list(enumerate(RELEASES)))
def test_effective_traits_are_unchanged(index, name):
    got = flows.get(name).traits
    assert {trait: getattr(got, trait) for trait in TRAITS} == {
        trait: values[index] for trait, values in TRAITS.items()}


@pytest.mark.parametrize('name', RELEASES)
def test_release_data_is_unchanged(name):
    found = flows.get(name)
    assert (found.nova_tag, found.date, found.options,
            found.conf_release) == RELEASE_DATA[name] + (None,)


def test_each_release_follows_the_one_before():
    chain = [flows.get(name) for name in RELEASES]
    assert chain[0].previous is None
    for before, after in zip(chain, chain[1:]):
        assert after.previous is before


def _replace_call(module):
    """The ``TRAITS = dataclasses.replace(<module>.TRAITS, ...)`` call."""
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if (isinstance(node, ast.Assign)
                and [t.id for t in node.targets] == ['TRAITS']):
            return node.value
    raise AssertionError(f'{module.__name__} declares no TRAITS')


@pytest.mark.parametrize('before,name',
                         list(zip(RELEASES, RELEASES[1:])))
def test_a_release_module_names_only_what_changed(before, name):
    """Its replace() starts from the release before and every trait it
    names differs there: the module reads as its changelog."""
    module = importlib.import_module(f'imagepipe.flows.{name}')
    assert module.RELEASE.traits is module.TRAITS
    call = _replace_call(module)
    assert ast.unparse(call.func) == 'dataclasses.replace'
    assert [ast.unparse(a) for a in call.args] == [f'{before}.TRAITS']
    named = [k.arg for k in call.keywords]
    assert len(named) == len(set(named))
    changed = {trait for trait, _, _ in module.RELEASE.changes()}
    assert set(named) == changed


def test_changes_list_what_differs_from_the_release_before():
    juno = flows.get('juno')
    assert juno.changes() == [
        ('fetch_rechecks_in_lock', False, True),
        ('lvm_lock_is_path', False, True),
        ('disk_info', 'append', 'atomic'),
    ]
    assert flows.get('essex').changes() == []
