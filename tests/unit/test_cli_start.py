"""What the command imports before it does anything: the cost of every
start. A command imports what it runs, not what the others need."""

import json
import subprocess
import sys

import pytest

HEAVY = ('taskflow', 'sqlalchemy', 'alembic', 'keystoneauth1', 'requests',
         'networkx')

PROBE = '''
import contextlib, io, json, sys
from imagepipe.cmd import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main.main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))
'''


def _imported(*argv):
    out = subprocess.run([sys.executable, '-c', PROBE, *argv], check=True,
                         capture_output=True, text=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize('argv', [['--help'], ['releases'],
                                  ['config', '--format', 'json']])
def test_light_commands_import_no_engine_nor_database(argv):
    assert _imported(*argv) & set(HEAVY) == set()


def test_plan_imports_the_engine_but_no_database():
    found = _imported('plan', '--image', 'http://h/i', '--instance', 'vm')
    assert 'taskflow' in found
    assert found & {'sqlalchemy', 'alembic', 'keystoneauth1'} == set()
