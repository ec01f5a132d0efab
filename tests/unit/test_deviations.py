"""Deviations and citations: every deviation reaches a plan and the docs;
nothing cites a file or a number a reader of this repository cannot open."""

import os
import re
import sys

import pytest

from imagepipe import flows
from imagepipe.conf import loader
from imagepipe.conf import options
from imagepipe.conf import settings as conf_settings
from imagepipe.flows import deviations
from tests.plans import IMAGE
from tests.plans import INSTANCE
from tests.plans import Plan

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
DOCS = os.path.join(ROOT, 'doc', 'source')

#: What cites the notes of the project's own sessions: the reference notes
#: files, their section numbers, issue numbers.
UNOPENABLE = re.compile(r'nova-reference|nova-modern|reference \d|issue \d',
                        re.IGNORECASE)


def _lvm(release):
    if release in ('icehouse', 'juno', 'gazpacho'):
        return {'libvirt': {'images_type': 'lvm',
                            'images_volume_group': 'vg'}}
    return {'libvirt_images_type': 'lvm', 'libvirt_images_volume_group': 'vg'}


CONFIGS = ({}, {'use_cow_images': False}, {'force_raw_images': False},
           {'force_raw_images': False, 'use_cow_images': False},
           {'preallocate_images': 'space'},
           {'resize_fs_using_block_device': True}, 'lvm')


def _plans(tmp_path):
    """A plan of every release for each configuration it can read."""
    instances = str(tmp_path / 'instances')
    for release in flows.registered():
        read = {o.spelling_in(release).name
                for o in options.for_release(release)}
        for conf in CONFIGS:
            conf = _lvm(release) if conf == 'lvm' else conf
            if not all(k == 'libvirt' or k in read for k in conf):
                continue
            lines = ['[DEFAULT]', f'instances_path = {instances}']
            lines += [f'{k} = {v}' for k, v in conf.items() if k != 'libvirt']
            lines += ['[libvirt]'] + [f'{k} = {v}' for k, v in
                                      conf.get('libvirt', {}).items()]
            path = tmp_path / 'nova.conf'
            path.write_text('\n'.join(lines) + '\n')
            settings = conf_settings.snapshot(
                loader.load([str(path)], release=release))
            on_lvm = 'libvirt' in conf or 'libvirt_images_type' in conf
            kwargs = {'release': release, 'settings': settings,
                      'request': {'image': IMAGE, 'instance': INSTANCE,
                                  'root_gb': 10,
                                  'ephemeral_gb': 0 if on_lvm else 1,
                                  'swap_mb': 0 if on_lvm else 64}}
            yield Plan(flows.factory(**kwargs), kwargs, instances)


@pytest.fixture(scope='module')
def all_notes(tmp_path_factory):
    return {n for plan in _plans(tmp_path_factory.mktemp('plans'))
            for n in plan.all_notes()}


@pytest.mark.parametrize('key', sorted(deviations.DEVIATIONS))
def test_every_deviation_reaches_a_plan(all_notes, key):
    assert deviations.note(key) in all_notes


def test_no_plan_note_cites_what_a_reader_cannot_open(all_notes):
    assert [n for n in all_notes if UNOPENABLE.search(n)] == []


def test_the_deviations_page_lists_every_deviation():
    with open(os.path.join(DOCS, 'deviations.rst')) as f:
        assert '.. imagepipe-deviations::' in f.read().splitlines()
    sys.path.insert(0, os.path.join(DOCS, '_ext'))
    try:
        import imagepipe_docs
    finally:
        sys.path.remove(os.path.join(DOCS, '_ext'))
    page = ' '.join(' '.join(imagepipe_docs.Deviations.lines(None)).split())
    for short, ref, text in deviations.DEVIATIONS.values():
        for said in (short, ref, text):
            assert ' '.join(said.split()) in page


def test_no_docstring_or_comment_cites_what_a_reader_cannot_open():
    found = []
    for top, dirs, files in os.walk(os.path.join(ROOT, 'imagepipe')):
        # imagepipe/conf is cleaned in a branch of its own
        dirs[:] = [d for d in dirs if d != 'conf']
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(top, name)
                with open(path) as f:
                    found += [f'{path}:{i}' for i, line in enumerate(f, 1)
                              if UNOPENABLE.search(line)]
    assert found == []
