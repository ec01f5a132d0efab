import os

import pytest

from tests import images


@pytest.fixture(autouse=True)
def no_openstack_credentials(monkeypatch):
    """The tests give Glance credentials themselves; none from the shell."""
    for name in list(os.environ):
        if name.startswith('OS_'):
            monkeypatch.delenv(name)


@pytest.fixture(scope='session')
def image_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('images')


@pytest.fixture(scope='session')
def raw_image(image_dir):
    """A 64 MiB raw disk with an ext4 filesystem on it."""
    return images.make_ext4(str(image_dir / 'disk.raw'))


@pytest.fixture(scope='session')
def qcow2_image(image_dir, raw_image):
    return images.convert(raw_image, str(image_dir / 'disk.qcow2'), 'qcow2')


@pytest.fixture(scope='session')
def compressed_qcow2_image(image_dir, raw_image):
    return images.convert(raw_image, str(image_dir / 'disk.zqcow2'), 'qcow2',
                          compress=True)
