"""Stand-in LVM and qemu-nbd commands for hosts without device-mapper or nbd.

:class:`Standins` writes small executables (``vgs``, ``lvs``, ``lvcreate``,
``lvremove``, ``blockdev``, ``shred``, ``qemu-nbd``) into a temporary bin
directory put first on PATH. Each appends its argv to a log as one JSON line
and emulates the tool on plain files under a temporary root:

* the volume group ``<vg>`` has a fixed size and free space;
* an LV is a sparse file ``<root>/dev/<vg>/<lv>`` (``lvcreate`` makes it,
  ``lvremove`` deletes each path it is given, ``lvs <vg>`` lists them,
  ``lvs <vg>/<lv>`` and ``blockdev --getsize64`` read its size). Unlike a
  block device, a file is truncated by ``dd`` and ``qemu-img convert``, so
  after a write the "LV" has the base's size;
* ``<root>/dev/nbdN`` are device nodes made by :meth:`Standins.nbd_devices`;
  ``qemu-nbd -c`` writes ``<root>/sys/block/nbdN/pid`` and turns the node
  into a symlink to the image (its bytes as they are, which is the disk only
  for a raw image); ``qemu-nbd -d`` undoes both;
* ``shred`` only records its call.

This module must import nothing but the standard library: each stand-in
runs it as its main program.
"""

import json
import os
import sys

TOOLS = ('vgs', 'lvs', 'lvcreate', 'lvremove', 'blockdev', 'shred',
         'qemu-nbd')

SCRIPT = '''#!{python}
import sys
sys.path.insert(0, {repo!r})
from tests import standins
sys.exit(standins.main({config!r}))
'''

GiB = 1024 ** 3


class Standins:
    """The stand-in commands installed for one test."""

    def __init__(self, tmp_path, monkeypatch, vg='vg0', vg_size=10 * GiB,
                 vg_free=8 * GiB):
        self.root = str(tmp_path / 'root')
        self.bin = str(tmp_path / 'bin')
        self.log = str(tmp_path / 'standins.log')
        self.vg = vg
        os.makedirs(os.path.join(self.root, 'dev', vg))
        os.makedirs(self.bin)
        config = str(tmp_path / 'standins.json')
        with open(config, 'w') as f:
            json.dump({'root': self.root, 'log': self.log, 'vg': vg,
                       'vg_size': vg_size, 'vg_free': vg_free}, f)
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for tool in TOOLS:
            path = os.path.join(self.bin, tool)
            with open(path, 'w') as f:
                f.write(SCRIPT.format(python=sys.executable, repo=repo,
                                      config=config))
            os.chmod(path, 0o755)
        monkeypatch.setenv('PATH', self.bin + os.pathsep + os.environ['PATH'])

    @property
    def dev(self):
        return os.path.join(self.root, 'dev')

    def lv_path(self, lv):
        return os.path.join(self.dev, self.vg, lv)

    def nbd_devices(self, count):
        """Create ``count`` idle nbd device nodes; return their paths."""
        paths = [os.path.join(self.dev, f'nbd{n}') for n in range(count)]
        for path in paths:
            open(path, 'w').close()
        return paths

    def calls(self, *tools):
        """The recorded argv lists (tool name first), of ``tools`` if given."""
        try:
            with open(self.log) as f:
                argvs = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [a for a in argvs if not tools or a[0] in tools]


# -- the stand-in side: runs as the tool's main program ---------------------

def _fail(message, status=5):
    print(message, file=sys.stderr)
    return status


def _bytes(value):
    return int(value.rstrip('bB'))


def _lv_file(cfg, vg, lv):
    return os.path.join(cfg['root'], 'dev', vg, lv)


def _vgs(cfg, argv):
    vg = argv[-1]
    if vg != cfg['vg']:
        return _fail(f'  Volume group "{vg}" not found')
    columns = argv[argv.index('-o') + 1].split(',')
    sep = argv[argv.index('--separator') + 1] if '--separator' in argv \
        else ' '
    print('  ' + sep.join(str(cfg[c]) for c in columns))
    return 0


def _lvs(cfg, argv):
    if '/' not in argv[-1]:  # the names of a group's volumes
        vg = argv[-1]
        if vg != cfg['vg']:
            return _fail(f'  Volume group "{vg}" not found')
        for lv in sorted(os.listdir(os.path.join(cfg['root'], 'dev', vg))):
            print(f'  {lv}')
        return 0
    vg, lv = argv[-1].split('/')
    path = _lv_file(cfg, vg, lv)
    if not os.path.exists(path):
        return _fail(f'  Failed to find logical volume "{vg}/{lv}"')
    print(f'  {os.path.getsize(path)}')
    return 0


def _lvcreate(cfg, argv):
    size = _bytes(argv[argv.index('-L') + 1])
    if '--virtualsize' in argv:
        size = _bytes(argv[argv.index('--virtualsize') + 1])
    lv, vg = argv[argv.index('-n') + 1], argv[-1]
    path = _lv_file(cfg, vg, lv)
    if os.path.exists(path):
        return _fail(f'  Logical Volume "{lv}" already exists in volume '
                     f'group "{vg}"')
    with open(path, 'wb') as f:
        f.truncate(size)
    print(f'  Logical volume "{lv}" created.')
    return 0


def _lvremove(cfg, argv):
    paths = [a for a in argv if not a.startswith('-')]
    for path in paths:
        if not os.path.exists(path):
            return _fail(f'  Failed to find logical volume "{path}"')
    for path in paths:
        os.unlink(path)
        print(f'  Logical volume "{os.path.basename(path)}" successfully '
              'removed')
    return 0


def _blockdev(cfg, argv):
    print(os.path.getsize(argv[-1]))
    return 0


def _shred(cfg, argv):
    return 0


def _pid_file(cfg, device):
    return os.path.join(cfg['root'], 'sys', 'block',
                        os.path.basename(device), 'pid')


def _qemu_nbd(cfg, argv):
    pid = _pid_file(cfg, argv[1])
    device = argv[1]
    os.unlink(device)
    if argv[0] == '-c':
        os.makedirs(os.path.dirname(pid), exist_ok=True)
        with open(pid, 'w') as f:
            f.write(f'{os.getpid()}\n')
        os.symlink(os.path.abspath(argv[2]), device)
    else:
        os.unlink(pid)
        open(device, 'w').close()
    return 0


HANDLERS = {'vgs': _vgs, 'lvs': _lvs, 'lvcreate': _lvcreate,
            'lvremove': _lvremove, 'blockdev': _blockdev, 'shred': _shred,
            'qemu-nbd': _qemu_nbd}


def main(config):
    """Record this call, then emulate the tool named by argv[0]."""
    with open(config) as f:
        cfg = json.load(f)
    tool = os.path.basename(sys.argv[0])
    argv = sys.argv[1:]
    with open(cfg['log'], 'a') as f:
        f.write(json.dumps([tool, *argv]) + '\n')
    return HANDLERS[tool](cfg, argv)
