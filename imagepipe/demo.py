"""The built-in demo: every release's default flow on a real little image.

Everything happens under one temporary directory: a small ext4 disk image
and a qcow2 of it, a loopback HTTP server serving them (so the real download
path runs), one instances_path per release (each release starts with an
empty cache) and one SQLite run database. Nothing else on the host is
touched.
"""

import contextlib
import functools
import http.server
import json
import os
import threading

from imagepipe import flows
from imagepipe import tools
from imagepipe.conf import loader
from imagepipe.conf import settings as conf_settings
from imagepipe.runner import driver
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store

IMAGE_MB = 64
ROOT_GB = 1


def build_image(workdir):
    """A raw ext4 disk with a few files on it, and a qcow2 copy of it."""
    tree = os.path.join(workdir, 'image-root')
    os.makedirs(os.path.join(tree, 'etc'), exist_ok=True)
    with open(os.path.join(tree, 'etc', 'motd'), 'w') as f:
        f.write('built by imagepipe demo\n')
    with open(os.path.join(tree, 'data.bin'), 'wb') as f:
        f.write(os.urandom(4 * 1024 * 1024))
    raw = os.path.join(workdir, 'images', 'demo.raw')
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    tools.run('mkfs.ext4', '-q', '-F', '-L', 'demo', '-d', tree, raw,
              f'{IMAGE_MB}M')
    qcow2 = raw[:-4] + '.qcow2'
    tools.run('qemu-img', 'convert', '-O', 'qcow2', raw, qcow2)
    return qcow2


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """A loopback HTTP server for ``directory``; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def release_settings(workdir, release):
    """The release's default settings, rooted in ``workdir``."""
    conf = os.path.join(workdir, f'{release}.conf')
    with open(conf, 'w') as f:
        f.write(f'[DEFAULT]\nstate_path = {workdir}/{release}\n'
                f'[imagepipe]\nconnection = sqlite:///{workdir}/runs.sqlite\n')
    return conf_settings.snapshot(loader.load([conf], release=release))


def run_release(workdir, release, image_url, listeners=()):
    """Run ``release``'s default flow; return (kwargs, flow, final detail)."""
    settings = release_settings(workdir, release)
    kwargs = {'release': release, 'settings': settings,
              'request': {'image': image_url, 'instance': f'demo-{release}',
                          'root_gb': ROOT_GB, 'ephemeral_gb': 0,
                          'swap_mb': 0}}
    flow = flows.factory(**kwargs)
    store = run_store.RunStore(
        persistence.open_backend(settings['connection']))
    fd = store.create(kwargs, flow)
    driver.drive(store, fd, flow, os.path.join(workdir, 'locks'),
               listeners=listeners)
    return kwargs, flow, store.reload(fd)


def disk_facts(path):
    """Format, virtual size, backing file and allocation of a disk file."""
    info = json.loads(tools.run('qemu-img', 'info', '--output=json', path)[1])
    return {'path': path, 'format': info['format'],
            'virtual_size': info['virtual-size'],
            'backing': info.get('backing-filename'),
            'allocated': os.stat(path).st_blocks * 512}


def outcome(kwargs, fd):
    """What a release left behind: base, resized base, disk, fs growth."""
    results = {ad.name: ad.results for ad in fd}
    settings, request = kwargs['settings'], kwargs['request']
    base = results['root-publish']['path']
    disk = os.path.join(settings['instances_path'], request['instance'],
                        'disk')
    resized = results.get('root-copy-base')
    grown = any(isinstance(r, dict) and r.get('grown') for r in
                results.values())
    return {'release': kwargs['release'], 'state': fd.state,
            'base': disk_facts(base),
            'resized_base': disk_facts(resized['path']) if resized else None,
            'disk': disk_facts(disk), 'fs_grown': grown}
