"""A real Glance API (glance 33 under gunicorn) on 127.0.0.1 for the tests.

Glance and gunicorn live in a virtualenv of their own (``tools/glance-venv.sh``
makes it, by default ``.venv-glance`` in the repo root), so none of glance's
~120 packages reach imagepipe's. :class:`GlanceServer` writes a config
directory (no Keystone: the empty paste flavor gives every request an admin
context, and a one-line policy override lets it act), creates the SQLite
schema with ``glance-manage db_sync``, runs glance-api under gunicorn and
talks to it over HTTP to create, upload and deactivate images. Every process
it starts is stopped by its PID (or the process group it leads).

:class:`GateProxy` relays TCP to a server and holds the first image download
after a number of bytes, so a test can stop the server in the middle of a
download on a loopback that would otherwise finish it in milliseconds.
"""

import http.client
import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / 'tools' / 'glance-venv.sh'

#: Seconds glance-api may take to answer its health check after a start.
START_TIMEOUT = 60

CONF = """\
[DEFAULT]
enabled_import_methods = []
node_staging_uri = file://{d}/staging
log_file = {d}/glance-api.log

[database]
connection = sqlite:///{d}/glance.sqlite

[glance_store]
filesystem_store_datadir = {d}/images/

[paste_deploy]
config_file = {d}/glance-api-paste.ini

[oslo_policy]
policy_file = {d}/policy.yaml
"""

# unauthenticated-context makes every request is_admin=True with no roles;
# glance 33's defaults want role:admin, so without this everything is 403.
POLICY = '"context_is_admin": ""\n'

#: The "trusted" flavor: identity from X-Identity-Status, X-Roles... headers
#: (what keystonemiddleware would set), so a request without them is 401.
TRUSTED_PASTE = """
[composite:glance-api-trusted]
paste.composite_factory = glance.api:root_app_factory
/: api
/healthcheck: healthcheck
"""
TRUSTED_PIPELINE = ('trusted = cors http_proxy_to_wsgi versionnegotiation '
                    'osprofiler context rootapp\n')

#: What an administrator of project p1 sends to a "trusted" glance.
ADMIN_HEADERS = {'X-Identity-Status': 'Confirmed', 'X-Roles': 'admin,member',
                 'X-Project-Id': 'p1', 'X-User-Id': 'u1'}

#: The request line, status and Range header of each request.
ACCESS_FORMAT = '%(r)s %(s)s range=%({range}i)s'


class Unavailable(Exception):
    """Glance could not be installed or started."""


def install_venv():
    """Run tools/glance-venv.sh; return (venv path, seconds it took)."""
    start = time.monotonic()
    try:
        done = subprocess.run(['bash', str(SCRIPT)], cwd=REPO, text=True,
                              capture_output=True, timeout=1200)
    except subprocess.TimeoutExpired:
        raise Unavailable(f'{SCRIPT} did not finish in 20 minutes') from None
    if done.returncode:
        tail = '\n'.join(done.stderr.strip().splitlines()[-15:])
        raise Unavailable(f'{SCRIPT} failed (exit {done.returncode}):\n'
                          f'{tail}')
    venv = REPO / done.stdout.strip().splitlines()[-1]
    return venv, time.monotonic() - start


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class GlanceServer:
    """glance-api on 127.0.0.1:``port`` with its state under ``workdir``.

    ``trusted`` selects the flavor that authenticates by headers (and the
    default policies) instead of treating every request as an admin's;
    ``policy`` adds rules (YAML lines) to the admin flavor's policy.
    """

    def __init__(self, venv, workdir, port=None, trusted=False, policy=''):
        self.venv = pathlib.Path(venv)
        self.trusted = trusted
        self.policy = policy
        self.dir = pathlib.Path(workdir)
        self.port = port or free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.proc = None

    # -- lifecycle --------------------------------------------------------

    def setup(self):
        """Config directory and database schema."""
        d = self.dir
        for sub in ('images', 'staging'):
            (d / sub).mkdir(parents=True, exist_ok=True)
        conf = CONF.format(d=d)
        paste = (self.venv / 'etc' / 'glance' /
                 'glance-api-paste.ini').read_text()
        if self.trusted:
            conf = conf.replace('[paste_deploy]\n',
                                '[paste_deploy]\nflavor = trusted\n')
            conf = conf.replace(f'policy_file = {d}/policy.yaml\n', '')
            paste = paste.replace(
                '[composite:api]\npaste.composite_factory = '
                'glance.api:pipeline_factory\n',
                '[composite:api]\npaste.composite_factory = '
                'glance.api:pipeline_factory\n' + TRUSTED_PIPELINE)
            assert TRUSTED_PIPELINE in paste, 'paste file layout changed'
            paste += TRUSTED_PASTE
        else:
            (d / 'policy.yaml').write_text(POLICY + self.policy)
        (d / 'glance-api.conf').write_text(conf)
        (d / 'glance-api-paste.ini').write_text(paste)
        done = subprocess.run(
            [str(self.venv / 'bin' / 'glance-manage'), '--config-file',
             str(d / 'glance-api.conf'), 'db_sync'],
            capture_output=True, text=True, env=self._env(), timeout=300)
        if done.returncode:
            raise Unavailable('glance-manage db_sync failed: '
                              + done.stderr.strip()[-2000:])
        return self

    def _env(self):
        return {**os.environ, 'OS_GLANCE_CONFIG_DIR': str(self.dir),
                'PYTHONWARNINGS': 'ignore'}

    def start(self):
        """Start gunicorn (in a process group of its own) and wait for it."""
        assert self.proc is None, 'already running'
        d = self.dir
        with open(d / 'gunicorn.out', 'ab') as out:
            self.proc = subprocess.Popen(
                [str(self.venv / 'bin' / 'gunicorn'),
                 '--bind', f'127.0.0.1:{self.port}', '--workers', '1',
                 '--threads', '4', '--timeout', '300',
                 '--graceful-timeout', '5', '--no-control-socket',
                 '--error-logfile', str(d / 'gunicorn.log'),
                 '--access-logfile', str(d / 'access.log'),
                 '--access-logformat', ACCESS_FORMAT,
                 'glance.wsgi.api:application'],
                env=self._env(), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_tail()
                self.proc = None
                raise Unavailable(f'glance-api exited at start:\n{log}')
            try:
                with urllib.request.urlopen(self.url + '/healthcheck',
                                            timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise Unavailable(f'glance-api did not answer in {START_TIMEOUT}s')

    def stop(self):
        """Stop the server by its PID (SIGTERM: gunicorn's graceful stop)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            self._kill_group(proc)

    def kill(self):
        """Crash the server: SIGKILL to the process group it leads (the
        gunicorn arbiter and its worker), as a host that dies."""
        proc, self.proc = self.proc, None
        if proc is not None:
            self._kill_group(proc)

    @staticmethod
    def _kill_group(proc):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def log_tail(self, lines=30):
        text = ''
        for name in ('gunicorn.out', 'gunicorn.log', 'glance-api.log'):
            path = self.dir / name
            if path.exists():
                text += ''.join(path.read_text(errors='replace')
                                .splitlines(True)[-lines:])
        return text

    def access_log(self):
        path = self.dir / 'access.log'
        return path.read_text().splitlines() if path.exists() else []

    # -- API --------------------------------------------------------------

    def _call(self, method, path, body=None, headers=None, ok=(200,)):
        conn = http.client.HTTPConnection('127.0.0.1', self.port,
                                          timeout=120)
        headers = dict(headers or {})
        if self.trusted:
            headers.update(ADMIN_HEADERS)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        if response.status not in ok:
            raise AssertionError(f'{method} {path}: HTTP {response.status}: '
                                 f'{data[:500]!r}')
        return json.loads(data) if data else None

    def create(self, name, disk_format, container_format='bare', **props):
        """A new image record (queued); returns its id."""
        body = json.dumps({'name': name, 'disk_format': disk_format,
                           'container_format': container_format, **props})
        return self._call('POST', '/v2/images', body,
                          {'Content-Type': 'application/json'},
                          ok=(201,))['id']

    def upload(self, image_id, path):
        """PUT the file (with Content-Length) as the image's data."""
        with open(path, 'rb') as f:
            self._call('PUT', f'/v2/images/{image_id}/file', f,
                       {'Content-Type': 'application/octet-stream',
                        'Content-Length': str(os.path.getsize(path))},
                       ok=(204,))
        return self.image(image_id)

    def add(self, path, disk_format, name=None):
        """Create and upload: the id of a new active image of ``path``."""
        image_id = self.create(name or os.path.basename(path), disk_format)
        meta = self.upload(image_id, path)
        assert meta['status'] == 'active', meta
        return image_id

    def image(self, image_id):
        return self._call('GET', f'/v2/images/{image_id}')

    def deactivate(self, image_id):
        self._call('POST', f'/v2/images/{image_id}/actions/deactivate',
                   ok=(204,))

    def stored_file(self, image_id):
        """Where the file store keeps the image's data."""
        return self.dir / 'images' / image_id


class GateProxy:
    """A TCP relay to 127.0.0.1:``upstream`` that can hold one download.

    The first request for an image's data (``.../file``) gets ``hold_after``
    bytes of the answer (headers included) and then nothing more: the relay
    sets :attr:`holding` and waits. :meth:`drop` then closes that connection
    both ways, as a server that dies does. Other connections are relayed as
    they are; one whose server cannot be reached is closed at once.
    """

    def __init__(self, upstream, hold_after):
        self.upstream = upstream
        self.hold_after = hold_after
        self.holding = threading.Event()
        self._drop = threading.Event()
        self._armed = True
        self._lock = threading.Lock()
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._drop.set()
        self._listener.close()
        self._thread.join(5)

    def drop(self):
        self._drop.set()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,),
                             daemon=True).start()

    def _relay(self, client):
        try:
            server = socket.create_connection(('127.0.0.1', self.upstream),
                                              timeout=5)
        except OSError:
            client.close()
            return
        server.settimeout(None)
        gate = {'on': False, 'sent': 0}
        threading.Thread(target=self._forward_requests,
                         args=(client, server, gate), daemon=True).start()
        try:
            while data := server.recv(65536):
                if gate['on']:
                    room = self.hold_after - gate['sent']
                    if len(data) >= room:
                        client.sendall(data[:room])
                        self.holding.set()
                        self._drop.wait()
                        return
                    gate['sent'] += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() first: close() alone sends nothing while the other
            # thread is still blocked in recv() on the same socket.
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _forward_requests(self, client, server, gate):
        try:
            while data := client.recv(65536):
                if b'/file ' in data:
                    with self._lock:
                        if self._armed:
                            self._armed = False
                            gate['on'] = True
                server.sendall(data)
            server.shutdown(socket.SHUT_WR)
        except OSError:
            pass
