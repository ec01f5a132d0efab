"""Usage mistakes through the real command line: a mistyped image fails
in one line that says what to change, leaves nothing to clean up (only
empty directories and lock files under instances_path), and the corrected
``run`` of the same instance is accepted at once.
"""

import os

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import Env
from tests.functional.runner_env import all_files
from tests.functional.runner_env import first_run_id

pytestmark = pytest.mark.slow


def leftovers(env):
    """Files under instances_path other than lock files."""
    return [p for p in all_files(env.instances)
            if os.path.relpath(p, env.instances).split(os.sep)[0] != 'locks'
            and not os.path.basename(p).startswith('imagepipe-')]


def refused_at(result, step):
    """The one error line of a run that failed at ``step`` (exit 1)."""
    assert result.rc == 1, result
    line = result.error_line()
    assert line.startswith(f'imagepipe: error: run {first_run_id(result)} '
                           f'failed and was reverted at step {step}: '), line
    return line


def assert_disk_made(env, instance='vm1'):
    assert os.path.isfile(os.path.join(env.instances, instance, 'disk'))


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """A directory of images to serve: ``small.qcow2`` (32 MiB virtual)."""
    d = str(tmp_path_factory.mktemp('mistakes'))
    small = images.make_ext4(os.path.join(d, 'small.raw'), 32,
                             files={'hello.txt': b'hello\n'})
    images.convert(small, os.path.join(d, 'small.qcow2'), 'qcow2')
    return d


@pytest.mark.parametrize('release', ['juno', 'gazpacho'])
def test_mistyped_image_then_the_right_one(tmp_path, served, release):
    env = Env(tmp_path, release=release)
    with httpserver.Server(served) as server:
        missing = server.url('smal.qcow2')
        line = refused_at(env.run(missing), 'root-fetch')
        assert line.endswith(f'{missing}: not found (HTTP 404): check the '
                             'image reference'), line
        assert leftovers(env) == []

        again = env.run(server.url('small.qcow2'))
    assert again.rc == 0, again
    assert_disk_made(env)
