"""Images from a real Glance (glance 33 under gunicorn, no Keystone).

The session fixture installs glance into its own virtualenv
(``tools/glance-venv.sh``), starts glance-api on a free 127.0.0.1 port and
uploads real images built with qemu-img. The runs go through the CLI with
``glance_api_servers = 127.0.0.1:<port>`` and are compared with runs of the
same image files. An install that fails (no network) fails these tests;
``IMAGEPIPE_SKIP_GLANCE=1`` skips them for a local run.
"""

import filecmp
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from tests import images
from tests.functional import glance_server

MiB = images.MiB

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get('IMAGEPIPE_SKIP_GLANCE') == '1',
                       reason='IMAGEPIPE_SKIP_GLANCE=1'),
]

IMAGEPIPE = os.path.join(os.path.dirname(sys.executable), 'imagepipe')

#: (release, image) pairs of the full default-flow runs.
FULL_RUNS = [('folsom', 'raw'), ('folsom', 'qcow2'),
             ('folsom', 'compressed-qcow2'), ('grizzly', 'raw'),
             ('grizzly', 'qcow2'), ('grizzly', 'compressed-qcow2')]


def _fail(what, error):
    pytest.fail(f'{what}: {error}\n(set IMAGEPIPE_SKIP_GLANCE=1 to skip the '
                'Glance tests on a machine without PyPI)', pytrace=False)


@pytest.fixture(scope='session')
def glance_venv():
    try:
        venv, seconds = glance_server.install_venv()
    except glance_server.Unavailable as e:
        _fail('installing glance failed', e)
    print(f'\nglance venv {venv} ready in {seconds:.1f}s', file=sys.stderr)
    return venv


def _started(venv, workdir, **kwargs):
    server = glance_server.GlanceServer(venv, workdir, **kwargs)
    try:
        return server.setup().start()
    except glance_server.Unavailable as e:
        _fail('starting glance-api failed', e)


@pytest.fixture(scope='session')
def glance(glance_venv, tmp_path_factory):
    server = _started(glance_venv, tmp_path_factory.mktemp('glance'))
    yield server
    server.stop()


@pytest.fixture(scope='module')
def spare_glance(glance_venv, tmp_path_factory):
    """A second glance-api for the tests that stop it mid-download."""
    server = _started(glance_venv, tmp_path_factory.mktemp('glance-spare'))
    yield server
    server.stop()


@pytest.fixture
def spare(spare_glance):
    if spare_glance.proc is None:          # a previous test stopped it
        spare_glance.start()
    return spare_glance


@pytest.fixture(scope='session')
def image_files(raw_image, qcow2_image, compressed_qcow2_image):
    return {'raw': raw_image, 'qcow2': qcow2_image,
            'compressed-qcow2': compressed_qcow2_image}


@pytest.fixture(scope='session')
def uploaded(glance, image_files):
    """Image ids in the session's Glance, by kind."""
    return {kind: glance.add(path, 'raw' if kind == 'raw' else 'qcow2',
                             name=kind)
            for kind, path in image_files.items()}


class Site:
    """An instances directory, a state directory and the config naming them.

    ``servers`` are the Glance API servers (``host:port``) of the config.
    """

    def __init__(self, root, servers, extra=''):
        self.root = root
        self.instances = root / 'instances'
        self.base_dir = self.instances / '_base'
        self.conf = root / 'nova.conf'
        self.conf.write_text(
            '[DEFAULT]\n'
            f'instances_path = {self.instances}\n'
            f'state_path = {root / "state"}\n'
            f'glance_api_servers = {",".join(servers)}\n{extra}')

    def argv(self, *args):
        return [IMAGEPIPE, '--config-file', str(self.conf), *args]

    def run_argv(self, release, image, instance='vm1', fmt='json'):
        return self.argv('--release', release, 'run', '--image', image,
                         '--instance', instance, '--root-gb', '1',
                         '--format', fmt)

    def run(self, release, image, instance='vm1'):
        """``imagepipe run``: (exit status, JSON report or None, stderr)."""
        done = subprocess.run(self.run_argv(release, image, instance),
                              capture_output=True, text=True, timeout=600)
        try:
            report = json.loads(done.stdout)
        except ValueError:
            report = None
        return done.returncode, report, done.stderr

    def base_files(self):
        if not self.base_dir.exists():
            return []
        return sorted(p.name for p in self.base_dir.iterdir())

    def outputs(self, image_ref, instance='vm1'):
        """Files of the run: ``_base/HEX...`` and ``INSTANCE/...`` paths."""
        hex_ = hashlib.sha1(image_ref.encode()).hexdigest()
        found = {f'_base/{name.replace(hex_, "HEX")}': self.base_dir / name
                 for name in self.base_files()}
        found.update({f'{instance}/{p.name}': p
                      for p in (self.instances / instance).iterdir()})
        return found


def _site(tmp_path, name, port):
    root = tmp_path / name
    root.mkdir()
    return Site(root, [f'127.0.0.1:{port}'])


@pytest.fixture(scope='session')
def file_runs(tmp_path_factory, image_files):
    """The outputs of a run of an image file, made once per release."""
    done = {}

    def get(release, kind):
        if (release, kind) not in done:
            root = tmp_path_factory.mktemp(f'file-{release}-{kind}')
            site = Site(root, [f'127.0.0.1:{glance_server.free_port()}'])
            status, report, err = site.run(release, image_files[kind])
            assert status == 0, err
            done[release, kind] = site.outputs(image_files[kind])
        return done[release, kind]
    return get


def assert_same_outputs(got, expected):
    """The same files, of the same format and virtual size; the base itself
    byte for byte (the copies that resize2fs touched differ in superblock
    times and checksums, so only their format and size are compared)."""
    assert sorted(got) == sorted(expected)
    assert '_base/HEX' in got
    for name, path in got.items():
        info, want = images.info(str(path)), images.info(str(expected[name]))
        assert (info['format'], info['virtual-size']) == (
            want['format'], want['virtual-size']), name
    assert filecmp.cmp(got['_base/HEX'], expected['_base/HEX'],
                       shallow=False)


def step(report, name):
    return next(s for s in report['steps'] if s['step'] == name)


@pytest.mark.parametrize('release,kind', FULL_RUNS)
def test_default_flow_from_glance_equals_file_run(
        glance, uploaded, file_runs, tmp_path, release, kind):
    site = _site(tmp_path, 'glance', glance.port)
    image_id = uploaded[kind]
    status, report, err = site.run(release, image_id)
    assert status == 0, err
    assert report['state'] == 'SUCCESS'
    meta = glance.image(image_id)
    fetched = step(report, 'root-fetch')['result']
    assert fetched['size'] == meta['size']
    assert fetched['disk_format'] == meta['disk_format']
    assert fetched['checksum'] == ['sha512', meta['os_hash_value']]
    inspected = step(report, 'root-inspect')['result']
    assert inspected['virtual_size'] == meta['virtual_size']
    assert_same_outputs(site.outputs(image_id), file_runs(release, kind))


def test_glance_url_reference(glance, uploaded, file_runs, tmp_path):
    site = _site(tmp_path, 'glance', glance.port)
    ref = f'glance://{uploaded["qcow2"]}'
    status, report, err = site.run('grizzly', ref)
    assert status == 0, err
    assert_same_outputs(site.outputs(ref), file_runs('grizzly', 'qcow2'))


def _error(err):
    """The one ``imagepipe: error:`` line of a failed run."""
    lines = [line for line in err.splitlines()
             if line.startswith('imagepipe: error:')]
    assert len(lines) == 1, err
    return lines[0]


def test_checksum_mismatch_is_rejected(glance, qcow2_image, tmp_path):
    image_id = glance.add(qcow2_image, 'qcow2', name='tampered')
    stored = glance.stored_file(image_id)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xff            # same size, other bytes
    stored.write_bytes(data)
    site = _site(tmp_path, 'site', glance.port)
    status, report, err = site.run('folsom', image_id)
    assert status == 1
    line = _error(err)
    assert 'at step root-fetch' in line
    assert re.search(r'sha512 checksum [0-9a-f]{128} does not match the '
                     r'declared [0-9a-f]{128}', line), line
    assert site.base_files() == []


def test_deactivated_image_is_refused(glance, qcow2_image, tmp_path):
    image_id = glance.add(qcow2_image, 'qcow2', name='deactivated')
    glance.deactivate(image_id)
    assert glance.image(image_id)['status'] == 'deactivated'
    site = _site(tmp_path, 'site', glance.port)
    status, report, err = site.run('grizzly', image_id)
    assert status == 1
    assert _error(err).endswith(
        f'root-fetch: {image_id}: image is deactivated, not active '
        '(an administrator deactivated it)')
    assert site.base_files() == []


def _refused_by_own_server(venv, image, tmp_path, release, **server):
    """Run ``release`` on ``image`` in a glance-api of its own configured by
    ``server``; (image id, error line, site), the run having failed."""
    glance = _started(venv, tmp_path / 'glance', **server)
    try:
        image_id = glance.add(image, 'qcow2', name='refused')
        site = _site(tmp_path, 'site', glance.port)
        status, report, err = site.run(release, image_id)
    finally:
        glance.stop()
    assert status == 1, err
    assert site.base_files() == []
    return image_id, _error(err)


def test_download_forbidden_by_policy(glance_venv, qcow2_image, tmp_path):
    """Glance's policy refuses the download: 403 in one line, nothing left
    in the cache."""
    image_id, line = _refused_by_own_server(
        glance_venv, qcow2_image, tmp_path, 'grizzly',
        policy='"download_image": "!"\n')
    assert re.search(rf'root-fetch: {image_id}: http://127\.0\.0\.1:\d+/v2/'
                     rf'images/{image_id}/file: access forbidden \(HTTP '
                     r'403', line), line


def test_content_contradicting_disk_format_is_refused(
        glance, qcow2_image, tmp_path):
    """A qcow2 declared raw: Glance 33 takes it, imagepipe must not."""
    image_id = glance.add(qcow2_image, 'raw', name='hostile')
    assert glance.image(image_id)['disk_format'] == 'raw'
    site = _site(tmp_path, 'site', glance.port)
    status, report, err = site.run('folsom', image_id)
    assert status == 1
    line = _error(err)
    assert 'at step root-inspect' in line
    assert line.endswith('content is qcow2 but the disk_format is raw')
    assert site.base_files() == []


def test_unknown_image(glance, tmp_path):
    missing = '0b4a4d3c-58b1-4a37-8f2c-6c4b8e1f0d11'
    site = _site(tmp_path, 'site', glance.port)
    status, report, err = site.run('folsom', missing)
    assert status == 1
    assert re.search(r'root-fetch: \S+: http://127\.0\.0\.1:\d+/v2/images/'
                     f'{missing}: not found \\(HTTP 404', _error(err))
    assert _error(err).endswith(': check the image reference')


def test_unreachable_endpoint(tmp_path):
    port = glance_server.free_port()
    site = _site(tmp_path, 'site', port)
    status, report, err = site.run('folsom',
                                   '0b4a4d3c-58b1-4a37-8f2c-6c4b8e1f0d11')
    assert status == 1
    assert _error(err).endswith(
        f'no Glance API server reachable (http://127.0.0.1:{port}/v2/images/'
        '0b4a4d3c-58b1-4a37-8f2c-6c4b8e1f0d11: unreachable: [Errno 111] '
        'Connection refused)')


def test_authentication_required(glance_venv, qcow2_image, tmp_path):
    """A Glance that wants credentials, and none configured: 401."""
    image_id, line = _refused_by_own_server(
        glance_venv, qcow2_image, tmp_path, 'folsom', trusted=True)
    assert re.search(rf'root-fetch: {image_id}: http://127\.0\.0\.1:\d+/v2/'
                     rf'images/{image_id}: authentication required \(HTTP '
                     r'401\)$', line), line


class _Listener:
    """A TCP server on 127.0.0.1 that hands each connection to
    ``_handle`` in its own accept thread, until its listener is closed."""

    def __init__(self):
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._handle(conn)


class _Hangup(_Listener):
    """A server that accepts connections and closes them at once (a Glance
    that cannot answer); counts them."""

    accepted = 0

    def _handle(self, conn):
        self.accepted += 1
        conn.close()


def test_num_retries_moves_to_the_next_server(glance, uploaded, file_runs,
                                              tmp_path):
    """Nova's [DEFAULT] glance_num_retries: 0 tries one server only; 1
    tries the next after the first failed, and that one is used."""
    first = _Hangup()
    servers = [f'127.0.0.1:{first.port}', f'127.0.0.1:{glance.port}']
    image = uploaded['compressed-qcow2']
    asked = len(_image_requests(glance, image))
    root = tmp_path / 'once'
    root.mkdir()
    status, report, err = Site(root, servers).run('grizzly', image)
    assert status == 1
    assert re.search(r'no Glance API server reachable \(http://127\.0\.0\.1:'
                     rf'{first.port}/v2/images/{image}: unreachable: [^;]*\)$',
                     _error(err)), err
    assert first.accepted == 1
    assert len(_image_requests(glance, image)) == asked   # never the next
    root = tmp_path / 'retried'
    root.mkdir()
    site = Site(root, servers, 'glance_num_retries = 1\n')
    status, report, err = site.run('grizzly', image)
    assert status == 0, err
    assert first.accepted == 3   # the metadata and the data: first, next
    assert _image_requests(glance, image)[asked:] == [
        f'GET /v2/images/{image} HTTP/1.1 200 range=-',
        f'GET /v2/images/{image}/file HTTP/1.1 200 range=-']
    assert step(report, 'root-fetch')['state'] == 'SUCCESS'
    assert_same_outputs(site.outputs(image),
                        file_runs('grizzly', 'compressed-qcow2'))
    first.listener.close()


class _TlsRelay(_Listener):
    """https on 127.0.0.1 in front of a plain-http server, with a
    self-signed certificate made by openssl."""

    def __init__(self, upstream, workdir):
        cert, key = workdir / 'cert.pem', workdir / 'key.pem'
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                        '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
                        '-keyout', str(key), '-out', str(cert)],
                       check=True, capture_output=True)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.upstream = upstream
        super().__init__()

    def _handle(self, conn):
        threading.Thread(target=self._relay, args=(conn,),
                         daemon=True).start()

    def _relay(self, conn):
        try:
            client = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()                   # the client refused the cert
            return
        server = socket.create_connection(('127.0.0.1', self.upstream))

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(server, client),
                         daemon=True).start()
        pump(client, server)


def test_insecure_skips_certificate_verification(glance, uploaded, tmp_path):
    """An https Glance with a self-signed certificate: refused, in one line
    naming the certificate, unless [DEFAULT] glance_api_insecure is set."""
    relay = _TlsRelay(glance.port, tmp_path)
    servers = [f'https://127.0.0.1:{relay.port}']
    image = uploaded['raw']
    root = tmp_path / 'verified'
    root.mkdir()
    status, report, err = Site(root, servers).run('grizzly', image)
    assert status == 1
    assert re.search(r'TLS failed: certificate verify failed: self[- ]signed '
                     r'certificate', _error(err)), err
    root = tmp_path / 'insecure'
    root.mkdir()
    site = Site(root, servers, 'glance_api_insecure = true\n')
    status, report, err = site.run('grizzly', image)
    assert status == 0, err
    assert step(report, 'root-fetch')['state'] == 'SUCCESS'
    relay.listener.close()


# -- a download cut by stopping glance-api mid-way -------------------------

#: Bytes of the answer the relay passes before holding the download.
HOLD_AFTER = 8 * MiB


def _image_requests(server, image_id):
    """The access log's lines of the requests for the image (its metadata
    and its data), in order."""
    return [line for line in server.access_log()
            if line.startswith(f'GET /v2/images/{image_id}')]


def _file_requests(server, image_id):
    """(status, Range) of each GET of the image's data, from the access
    log."""
    found = []
    for line in server.access_log():
        m = re.match(rf'GET /v2/images/{image_id}/file HTTP/1\.1 (\d+) '
                     r'range=(\S+)', line)
        if m:
            found.append((int(m.group(1)), m.group(2)))
    return found


def _cut(server, proxy, proc):
    """Wait for the held download, then kill glance-api and cut it."""
    if not proxy.holding.wait(120):
        proc.kill()
        pytest.fail(f'the download never started: {proc.communicate()}')
    server.kill()
    proxy.drop()


def test_cut_download_is_continued_with_range(
        spare, raw_image, file_runs, tmp_path):
    """glance-api stops mid-download and comes back: the same run goes on
    with a Range request and ends with the same disk."""
    image_id = spare.add(raw_image, 'raw', name='cut')
    with glance_server.GateProxy(spare.port, HOLD_AFTER) as proxy:
        site = _site(tmp_path, 'site', proxy.port)
        proc = subprocess.Popen(site.run_argv('folsom', image_id),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _cut(spare, proxy, proc)
            time.sleep(0.5)
            spare.start()
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert re.search(rf'{image_id}: download cut at byte \d+ of '
                     rf'{os.path.getsize(raw_image)} .*continuing with a '
                     r'Range request', err), err
    status, wanted = _file_requests(spare, image_id)[-1]
    assert status == 206
    start = int(re.fullmatch(r'bytes=(\d+)-', wanted).group(1))
    assert 0 < start < HOLD_AFTER
    assert_same_outputs(site.outputs(image_id), file_runs('folsom', 'raw'))


def test_cut_download_resumed_after_crash(
        spare, raw_image, file_runs, tmp_path):
    """glance-api stops mid-download and imagepipe dies while it waits to
    continue: ``imagepipe resume RUN`` continues the .part with Range."""
    image_id = spare.add(raw_image, 'raw', name='crash')
    with glance_server.GateProxy(spare.port, HOLD_AFTER) as proxy:
        site = _site(tmp_path, 'site', proxy.port)
        proc = subprocess.Popen(site.run_argv('grizzly', image_id,
                                              fmt='table'),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            run_id = proc.stdout.readline().split()[1]
            _cut(spare, proxy, proc)
            for line in proc.stderr:               # the cut was noticed
                if 'download cut at byte' in line:
                    break
            proc.kill()                            # the host dies
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
        part = site.base_dir / (hashlib.sha1(image_id.encode()).hexdigest()
                                + '.part')
        kept = part.stat().st_size
        assert 0 < kept < HOLD_AFTER
        spare.start()
        done = subprocess.run(site.argv('resume', run_id), text=True,
                              capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f'run {run_id}' in done.stdout
    assert _file_requests(spare, image_id)[-1] == (206, f'bytes={kept}-')
    assert not part.exists()
    assert_same_outputs(site.outputs(image_id), file_runs('grizzly', 'raw'))


def test_cut_download_gives_up_when_glance_stays_down(
        spare, raw_image, tmp_path):
    image_id = spare.add(raw_image, 'raw', name='down')
    with glance_server.GateProxy(spare.port, HOLD_AFTER) as proxy:
        site = _site(tmp_path, 'site', proxy.port)
        proc = subprocess.Popen(site.run_argv('folsom', image_id),
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            _cut(spare, proxy, proc)
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 1
    assert re.search(
        rf'root-fetch: {image_id}: download cut at byte \d+ of '
        rf'{os.path.getsize(raw_image)} \(Connection broken: .*\); gave up '
        r'after 3 Range retries; last: no Glance API server reachable '
        r'\(http://\S+/file: unreachable: .*\)$', _error(err)), err
    assert site.base_files() == []
