"""Fixtures shared by the unit tests of the image cache tasks."""

import subprocess

import pytest

from imagepipe.sources import resume
from imagepipe.tasks import locks


@pytest.fixture
def cache(tmp_path):
    """The base dir, and the path arguments of the cache tasks in it."""
    base_dir = tmp_path / '_base'
    base_dir.mkdir()
    return {'part': str(base_dir / 'abc.part'),
            'converted': str(base_dir / 'abc.converted'),
            'base': str(base_dir / 'abc'), 'dir': base_dir}


@pytest.fixture
def lock(tmp_path):
    """An external image lock named like the cache entry, released after."""
    spec = {'name': 'abc', 'path': str(tmp_path / 'locks'), 'external': True,
            'last': False}
    yield spec
    locks.release(spec['name'])


@pytest.fixture
def no_retry_delay(monkeypatch):
    """Retries of a cut download at once."""
    monkeypatch.setattr(resume, 'RETRY_DELAY', 0)


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs (to fill up, or to make read-only), unmounted after."""
    mnt = tmp_path / 'mnt'
    mnt.mkdir()
    done = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m', 'tmpfs',
                           str(mnt)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f'cannot mount a tmpfs here: {done.stderr.strip()}')
    yield mnt
    subprocess.run(['umount', str(mnt)], check=True)
