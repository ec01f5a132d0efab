"""Small real disk images the tests build for themselves."""

import os
import subprocess

MiB = 1024 * 1024


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True,
                          env={**os.environ, 'LC_ALL': 'C'}).stdout


def make_ext4(path, size_mb=64, files=None):
    """A raw disk holding an ext4 filesystem directly (no partition table).

    ``files`` maps relative names to bytes put into the filesystem, so the
    image has real data blocks as well as holes.
    """
    root = path + '.root'
    os.makedirs(root, exist_ok=True)
    for name, data in (files or {'hello.txt': b'hello from imagepipe\n' * 1000}
                       ).items():
        with open(os.path.join(root, name), 'wb') as f:
            f.write(data)
    sh('mkfs.ext4', '-q', '-F', '-d', root, path, f'{size_mb}M')
    return path


def convert(src, dest, fmt, compress=False):
    cmd = ['qemu-img', 'convert', '-O', fmt]
    if compress:
        cmd.append('-c')
    sh(*cmd, src, dest)
    return dest


def info(path):
    import json
    return json.loads(sh('qemu-img', 'info', '--output=json', path))


def fs_block_count(path):
    """Block count of the ext filesystem at the start of ``path``."""
    for line in sh('dumpe2fs', '-h', path).splitlines():
        if line.startswith('Block count:'):
            return int(line.split(':')[1])
    raise AssertionError('no block count')


def allocated(path):
    return os.stat(path).st_blocks * 512
