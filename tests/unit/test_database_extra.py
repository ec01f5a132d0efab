"""SQLAlchemy and alembic are the ``imagepipe[database]`` extra: a run on
SQLite needs neither. The command runs in a subprocess where importing them
fails as it does when they are not installed."""

import json
import os
import sqlite3
import subprocess
import sys

from tests import images

WITHOUT_SQLALCHEMY = '''
import json, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in ('sqlalchemy', 'alembic'):
            raise ModuleNotFoundError(f'No module named {name!r}')

sys.meta_path.insert(0, NotInstalled())
from imagepipe.cmd import main
code = main.main(sys.argv[1:])
print(json.dumps(sorted(m for m in sys.modules
                        if m.partition('.')[0] in ('sqlalchemy', 'alembic'))))
sys.exit(code)
'''
PATH = os.environ.get('PATH', '') + ':/usr/sbin:/sbin'  # e2fsck, resize2fs


def _imagepipe(tmp_path, connection, *argv):
    conf = tmp_path / 'imagepipe.conf'
    conf.write_text(f'[DEFAULT]\nstate_path = {tmp_path}/state\n'
                    f'instances_path = {tmp_path}/instances\n'
                    f'[imagepipe]\nconnection = {connection}\n')
    return subprocess.run(
        [sys.executable, '-c', WITHOUT_SQLALCHEMY, '--config-file',
         str(conf), '--release', 'juno', *argv],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, 'PATH': PATH})


def test_a_sqlite_run_without_sqlalchemy(tmp_path):
    image = images.make_ext4(str(tmp_path / 'disk.raw'), 32)
    db = tmp_path / 'runs.sqlite'
    done = _imagepipe(tmp_path, f'sqlite:///{db}', 'run', '--image', image,
                      '--instance', 'vm1', '--root-gb', '1')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
    disk = images.info(str(tmp_path / 'instances' / 'vm1' / 'disk'))
    assert (disk['format'], disk['virtual-size']) == ('qcow2', 1024 ** 3)
    with sqlite3.connect(db) as conn:
        assert conn.execute('SELECT state FROM flowdetails').fetchall() == [
            ('SUCCESS',)]
    listed = _imagepipe(tmp_path, f'sqlite:///{db}', 'runs', '--format',
                        'json')
    assert listed.returncode == 0, listed.stderr


def test_another_database_without_the_extra_is_one_config_error(tmp_path):
    done = _imagepipe(tmp_path, 'mysql+pymysql://nova:secret@db/imagepipe',
                      'runs')
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imagepipe: error: [imagepipe] connection: a mysql+pymysql database "
        "needs SQLAlchemy and alembic (pip install 'imagepipe[database]'): "
        "No module named 'sqlalchemy'"]    # and not the URL's password
