"""Hostile configurations and names through the real command line: each is
refused by ``plan`` and ``run`` alike with one line and exit status 2,
before anything is written, never with a traceback."""

import os

import pytest

from tests.functional.runner_env import Env
from tests.functional.runner_env import all_files

pytestmark = pytest.mark.slow


def refused(result, line):
    """Exit status 2, and ``line`` as the only thing on stderr."""
    assert result.rc == 2, result
    assert result.error_line() == f'imagepipe: error: {line}'
    assert result.out == ''


def plan_and_run(env, image, instance, *options):
    """The results of ``plan`` and ``run`` of one request."""
    request = ('--image', image, '--instance', instance)
    return [env.cli(*options, command, *request)
            for command in ('plan', 'run')]


def nothing_written(env):
    assert all_files(env.root) == [env.conf]


class TestNamesUnderInstancesPath:
    """An instance name or cache directory that is not one plain directory
    under instances_path."""

    @pytest.mark.parametrize('release, conf, name', [
        ('folsom', '', '_base'),                                # the default
        ('grizzly', '[DEFAULT]\nbase_dir_name = cache', 'cache'),
    ])
    def test_instance_named_like_the_image_cache(self, tmp_path, small,
                                                 release, conf, name):
        env = Env(tmp_path / 'env', release=release)
        if conf:
            env.configure(conf)
        for result in plan_and_run(env, small[1], name):
            refused(result, f"instance name '{name}' is the image cache or "
                            'lock directory under instances_path: choose '
                            'another name')
        nothing_written(env)

    def test_instance_name_longer_than_a_file_name(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        name = 'v' * 256
        for result in plan_and_run(env, small[1], name):
            refused(result, f'instance name {name!r} is longer than 255 '
                            'bytes: it must name one directory under '
                            'instances_path')
        nothing_written(env)

    @pytest.mark.parametrize('release,option,value', [
        ('gazpacho', '[image_cache]\nsubdirectory_name', '../x'),
        ('icehouse', '[DEFAULT]\nimage_cache_subdirectory_name', '../x'),
        ('grizzly', '[DEFAULT]\nbase_dir_name', '/tmp/elsewhere'),
    ])
    def test_cache_directory_outside_instances_path(self, tmp_path, small,
                                                     release, option, value):
        env = Env(tmp_path / 'env', release=release)
        env.configure(f'{option} = {value}')
        for result in plan_and_run(env, small[1], 'vm1'):
            refused(result, f'image_cache_subdirectory_name {value!r} '
                            'contains "/" or NUL: it must name one directory '
                            'under instances_path')
        nothing_written(env)
        assert not os.path.exists(os.path.join(env.root, 'x'))

    def test_empty_instances_path(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        env.configure('[DEFAULT]\ninstances_path =')
        env.cwd = str(tmp_path / 'cwd')
        os.makedirs(env.cwd)
        for result in plan_and_run(env, small[1], 'vm1'):
            refused(result, f'instances_path is empty ({env.conf} [DEFAULT] '
                            'instances_path): it must name a directory')
        assert os.listdir(env.cwd) == []
        nothing_written(env)


class TestConfigFilesOsloIgnoresOrChokesOn:

    def test_config_dir_naming_a_file(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        other = str(tmp_path / 'nova.conf')
        with open(other, 'w') as f:
            f.write('[DEFAULT]\ninstances_path = /var/lib/nova/instances\n')
        results = [env.cli('--config-dir', other, 'config')]
        results += plan_and_run(env, small[1], 'vm1', '--config-dir', other)
        for result in results:
            refused(result, f'--config-dir {other} is not a directory')
        nothing_written(env)

    def test_config_dir_missing_then_a_file(self, tmp_path):
        """oslo.config keeps the last --config-dir only: the first is
        checked too."""
        env = Env(tmp_path / 'env')
        missing = str(tmp_path / 'nowhere')
        result = env.cli('--config-dir', missing, '--config-dir',
                         str(tmp_path), 'config')
        refused(result, f'--config-dir {missing} does not exist')

    def test_config_file_not_utf8(self, tmp_path):
        env = Env(tmp_path / 'env')
        bad = str(tmp_path / 'latin1.conf')
        with open(bad, 'wb') as f:
            f.write('[DEFAULT]\nmy_ip = 10.0.0.1 # caf\xe9\n'.encode(
                'latin-1'))
        refused(env.cli('--config-file', bad, 'config'),
                f'config file {bad} is not UTF-8 text (byte 32 is 0xe9)')

    def test_config_dir_holding_a_file_not_utf8(self, tmp_path):
        env = Env(tmp_path / 'env')
        conf_dir = tmp_path / 'nova.conf.d'
        conf_dir.mkdir()
        (conf_dir / '10-bad.conf').write_bytes(b'[DEFAULT]\n\xff\xfe\n')
        refused(env.cli('--config-dir', str(conf_dir), 'config'),
                f'config file {conf_dir}/10-bad.conf is not UTF-8 text '
                '(byte 10 is 0xff)')

    def test_directory_as_config_file(self, tmp_path):
        env = Env(tmp_path / 'env')
        refused(env.cli('--config-file', str(tmp_path), 'config'),
                f'config file {tmp_path} is a directory')


class TestImagepipeOptionValues:

    def test_negative_download_retries(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        env.configure('[imagepipe]\ndownload_retries = -5')
        for result in [env.cli('config')] + plan_and_run(env, small[1],
                                                         'vm1'):
            refused(result, "invalid value '-5' for [imagepipe] "
                            f'download_retries in {env.conf}: should be '
                            'greater than or equal to 0')

    def test_download_retries_not_a_number(self, tmp_path):
        env = Env(tmp_path / 'env')
        env.configure('[imagepipe]\ndownload_retries = many')
        result = env.cli('config')
        assert result.rc == 2, result
        assert result.error_line().startswith(
            "imagepipe: error: invalid value 'many' for [imagepipe] "
            f'download_retries in {env.conf}: ')

    def test_log_file_in_a_missing_directory(self, tmp_path, small):
        env = Env(tmp_path / 'env')
        log = str(tmp_path / 'no' / 'such' / 'imagepipe.log')
        env.configure(f'[imagepipe]\nlog_file = {log}')
        for result in [env.cli('config')] + plan_and_run(env, small[1],
                                                         'vm1'):
            refused(result, f'[imagepipe] log_file {log} cannot be opened: '
                            'No such file or directory')
