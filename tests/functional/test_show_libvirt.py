"""``imagepipe show RUN --libvirt-xml`` on a finished run."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests import images

pytestmark = pytest.mark.slow


def _cli(conf, *args):
    return subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main',
                           '--config-file', conf, *args],
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize('release,use_cow,driver', [
    ('folsom', 'true', 'qcow2'), ('folsom', 'false', 'raw'),
    ('juno', 'true', 'qcow2')])
def test_disk_element_follows_the_release(tmp_path, qcow2_image, release,
                                          use_cow, driver):
    conf = tmp_path / 'nova.conf'
    conf.write_text(f'[DEFAULT]\nstate_path = {tmp_path}/state\n'
                    f'use_cow_images = {use_cow}\n')
    p = _cli(str(conf), '--release', release, 'run', '--image', qcow2_image,
             '--instance', 'vm1', '--root-gb', '1', '--format', 'json')
    assert p.returncode == 0, p.stderr
    run_id = json.loads(p.stdout)['run']
    p = _cli(str(conf), 'show', run_id, '--libvirt-xml')
    assert p.returncode == 0, p.stderr
    disk = ET.fromstring(p.stdout)
    source = disk.find('source').get('file')
    assert source == f'{tmp_path}/state/instances/vm1/disk'
    assert disk.find('driver').get('type') == driver
    assert images.info(source)['format'] == driver
    p = _cli(str(conf), 'show', run_id, '--domain')
    assert p.returncode == 2 and '--kernel' in p.stderr
