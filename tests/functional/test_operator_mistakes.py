"""Usage mistakes through the real command line: a mistyped image and a
root disk smaller than the image. Each fails in one line that says what to
change, leaves nothing to clean up (only empty directories and lock files
under instances_path), and the corrected ``run`` of the same instance is
accepted at once. An image too large for the root disk is refused as soon
as its header arrives, long before the whole image would have.
"""

import os

import pytest

from tests import httpserver
from tests import images
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import all_files
from tests.functional.runner_env import first_run_id

pytestmark = pytest.mark.slow

GiB = 1024 ** 3
#: Bytes a second the throttled server sends: the whole of an image below
#: would take over ten seconds.
RATE = 2 * MiB


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


def sparse_raw(path, data, size):
    """A raw image of ``size`` bytes whose first bytes are ``data``."""
    with open(path, 'wb') as f:
        f.write(data)
        f.truncate(size)
    return path


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """A directory of images to serve: ``small.qcow2`` (32 MiB virtual);
    ``big.qcow2``, 2 GiB virtual with 24 MiB of data at its start;
    ``bomb.qcow2``, compressed, 64 GiB virtual with 24 MiB of random data;
    ``big.raw``, a raw image of 2 GiB with 24 MiB of data at its start."""
    d = str(tmp_path_factory.mktemp('mistakes'))
    small = images.make_ext4(os.path.join(d, 'small.raw'), 32,
                             files={'hello.txt': b'hello\n'})
    images.convert(small, os.path.join(d, 'small.qcow2'), 'qcow2')
    data = os.urandom(24 * MiB)
    raw = sparse_raw(os.path.join(d, 'big.raw'), data, 2 * GiB)
    images.convert(raw, os.path.join(d, 'big.qcow2'), 'qcow2')
    huge = sparse_raw(os.path.join(d, 'huge.raw'), data, 64 * GiB)
    images.convert(huge, os.path.join(d, 'bomb.qcow2'), 'qcow2',
                   compress=True)
    os.unlink(huge)
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


@pytest.mark.parametrize('release,name,virtual', [
    ('juno', 'big.qcow2', 2 * GiB),
    ('gazpacho', 'big.qcow2', 2 * GiB),
    ('gazpacho', 'bomb.qcow2', 64 * GiB),
    ('juno', 'big.raw', 2 * GiB),
])
def test_too_large_for_the_root_disk_stops_at_the_header(
        tmp_path, served, release, name, virtual):
    whole = os.path.getsize(os.path.join(served, name))
    assert whole >= 24 * MiB and images.info(
        os.path.join(served, name))['virtual-size'] == virtual
    env = Env(tmp_path, release=release)
    with httpserver.Server(served, rate=RATE) as server:
        line = refused_at(env.run(server.url(name)), 'root-fetch')
        sent = server.sent
    gib = virtual // GiB
    assert line.endswith(
        "is unacceptable: Flavor's disk is too small for requested image: "
        f'virtual size {gib}.0 GiB exceeds root disk 1.0 GiB: use --root-gb '
        f'{gib} or more'), line
    assert sent < 8 * MiB < whole / 3, (sent, whole)
    assert leftovers(env) == []


def test_root_gb_raised_as_told_is_accepted_at_once(tmp_path, served):
    env = Env(tmp_path, release='juno')
    with httpserver.Server(served, rate=RATE) as server:
        url = server.url('big.qcow2')
        refused_at(env.run(url), 'root-fetch')
        server.rate = None
        again = env.run(url, 'vm1', '--root-gb', '2')
    assert again.rc == 0, again
    assert_disk_made(env)
    assert images.info(os.path.join(env.instances, 'vm1', 'disk'))[
        'virtual-size'] == 2 * GiB
