"""The input images: a 2 GiB ext4 disk holding about 0.5 GiB of data.

The file tree is 330 MiB of real binaries and Python sources (they compress
the way an OS image does), 150 MiB of seeded random bytes (incompressible)
and a 64 MiB file of zeros (becomes holes). mke2fs writes it without a loop
mount; the raw disk is then converted to qcow2 and to zlib-compressed qcow2.
Built once per work directory: a stamp file records what was built.
"""

import json
import os
import random
import shutil
import subprocess

MiB = 1024 ** 2

#: Bump when a recipe changes, so a cached build is not reused.
VERSION = 1

#: What goes into the disk: virtual size, real files, random and zero MiB.
#: ``quick`` is the same recipe at an eighth of the size, for a smoke run.
RECIPES = {
    'full': {'virtual': '2G', 'real_mb': 330, 'random_mb': 150,
             'zeros_mb': 64},
    'quick': {'virtual': '256M', 'real_mb': 40, 'random_mb': 18,
              'zeros_mb': 8},
}

#: name -> (file, qemu-img format): what the server offers.
IMAGES = {
    'raw': ('disk.raw', 'raw'),
    'qcow2': ('disk.qcow2', 'qcow2'),
    'qcow2-zlib': ('disk-zlib.qcow2', 'qcow2'),
}


def _sh(*argv):
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _copy_capped(sources, dest, budget):
    """Copy regular files of ``sources`` (in name order) up to ``budget``."""
    for source in sources:
        for top, dirs, files in os.walk(source):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(top, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                size = os.path.getsize(path)
                if size > budget:
                    return
                target = os.path.join(dest, os.path.relpath(path, '/'))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(path, target)
                budget -= size


def _tree(root, recipe):
    """Real files, random bytes and zeros under ``root``."""
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, 'data'))
    _copy_capped(['/usr/bin', os.path.dirname(os.__file__)], root,
                 recipe['real_mb'] * MiB)
    rng = random.Random(7)
    with open(os.path.join(root, 'data', 'random.bin'), 'wb') as f:
        for _ in range(recipe['random_mb']):
            f.write(rng.randbytes(MiB))
    with open(os.path.join(root, 'data', 'zeros.bin'), 'wb') as f:
        f.write(bytes(recipe['zeros_mb'] * MiB))


def _map_data(path, fmt):
    """Bytes qemu-img reports as data (not zero, not a hole) in ``path``."""
    out = subprocess.run(['qemu-img', 'map', '--output=json', '-f', fmt,
                          path], check=True, capture_output=True,
                         text=True).stdout
    return sum(e['length'] for e in json.loads(out)
               if e['data'] and not e.get('zero'))


def build(directory, scale='full', log=print):
    """The images of ``scale`` under ``directory``; their facts (cached)."""
    recipe = RECIPES[scale]
    directory = os.path.join(directory, scale)
    stamp = os.path.join(directory, 'inputs.json')
    if os.path.exists(stamp):
        with open(stamp) as f:
            facts = json.load(f)
        if facts.get('recipe') == [VERSION, recipe] and all(
                os.path.exists(os.path.join(directory, name))
                for name, _ in IMAGES.values()):
            return facts
    os.makedirs(directory, exist_ok=True)
    log(f'building the input images in {directory} (once) ...')
    tree = os.path.join(directory, 'tree')
    _tree(tree, recipe)
    raw = os.path.join(directory, IMAGES['raw'][0])
    qcow2 = os.path.join(directory, IMAGES['qcow2'][0])
    zlib = os.path.join(directory, IMAGES['qcow2-zlib'][0])
    _sh('mke2fs', '-q', '-t', 'ext4', '-d', tree, '-F', raw,
        recipe['virtual'])
    shutil.rmtree(tree)
    _sh('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2)
    _sh('qemu-img', 'convert', '-c', '-f', 'raw', '-O', 'qcow2', raw, zlib)
    facts = {'recipe': [VERSION, recipe], 'directory': directory,
             # the data the disk holds: what a sparse copy must allocate
             'data_bytes': _map_data(qcow2, 'qcow2'), 'images': {}}
    for name, (filename, fmt) in IMAGES.items():
        path = os.path.join(directory, filename)
        st = os.stat(path)
        facts['images'][name] = {'file': filename, 'format': fmt,
                                 'size': st.st_size,
                                 'allocated': st.st_blocks * 512}
    facts['virtual_size'] = facts['images']['raw']['size']
    with open(stamp, 'w') as f:
        json.dump(facts, f, indent=1)
    return facts
