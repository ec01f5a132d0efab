"""Images and the served environment the functional tests of runs share
(built once per module)."""

import os

import pytest

from tests import httpserver
from tests.functional.runner_env import Env
from tests.functional.runner_env import MiB
from tests.functional.runner_env import ext4_qcow2
from tests.functional.runner_env import snapshot


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    """(raw, qcow2) of a 32 MiB ext4 disk holding a little data."""
    d = tmp_path_factory.mktemp('small-image')
    return ext4_qcow2(str(d), 'small', 32,
                      {'hello.txt': b'hello from imagepipe\n' * 2000})


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """A directory a local HTTP server serves, with a 12 MiB-of-data qcow2
    (``big.qcow2``, long enough to download under a throttle)."""
    d = str(tmp_path_factory.mktemp('served'))
    raw, _ = ext4_qcow2(d, 'big', 32, {'data.bin': os.urandom(12 * MiB)})
    return d, raw


@pytest.fixture(scope='module')
def big(tmp_path_factory, served):
    """An environment fetching big.qcow2 from a server on a fixed port,
    with the snapshot of an uninterrupted folsom run of it."""
    root, raw = served
    env = Env(tmp_path_factory.mktemp('big') / 'env')
    with httpserver.Server(root) as server:
        env.server, env.url, env.raw = server, server.url('big.qcow2'), raw
        clean = env.run(env.url)
        assert clean.rc == 0, clean
        env.want = snapshot(env.instances)
        yield env


@pytest.fixture
def big_env(big):
    big.wipe()
    big.server.rate = None
    big.mark = len(big.server.requests)
    yield big
    big.server.rate = None
