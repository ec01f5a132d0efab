"""Hostile and unlucky image sources, through the real command line.

A source that changed between a crash and the resume, a local path typed
from two directories, credentials in a URL, a body the server encoded, a
slow link and a URL that does not parse. Each class holds the reproducer of
its problem and variants; the runs go through ``imagepipe`` in subprocesses
against the tests' HTTP server and real images, as in the test_runner_* files.
"""

import json
import os
import shutil
import subprocess
import threading

import pytest
from taskflow import task as tf_task

from imagepipe.sources.base import CHUNK_SIZE
from imagepipe.tasks.fetch import Fetch
from tests import httpserver
from tests import images
from tests.functional.runner_env import Env
from tests.functional.runner_env import content_digest
from tests.functional.runner_env import finish
from tests.functional.runner_env import first_run_id
from tests.functional.runner_env import killed
from tests.functional.runner_env import temporaries
from tests.functional.runner_env import wait_for

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def ext4_raw(path, seed_files):
    """A 32 MiB raw ext4 disk (the same length whatever it holds)."""
    return images.make_ext4(path, 32, files=seed_files)


@pytest.fixture(scope='module')
def versions(tmp_path_factory):
    """Two raw disks of the same length and different content."""
    d = tmp_path_factory.mktemp('versions')
    return [ext4_raw(str(d / f'v{n}.raw'), {'data.bin': os.urandom(6 * MiB)})
            for n in (1, 2)]


def base_of(env, run_id):
    return env.result(run_id, 'root-publish')['path']


def db_bytes(env):
    """Every byte of the run database (WAL and shared memory included)."""
    data = b''
    for name in os.listdir(env.root):
        path = os.path.join(env.root, name)
        if name.startswith('runs.sqlite') and os.path.isfile(path):
            with open(path, 'rb') as f:
                data += f.read()
    return data


# -- a resumed download proves the source is the same ------------------------

class TestChangedSourceResume:
    """Kill a download, change the source (same length), resume: the base
    is the new image (or the old one whole), never a splice of both."""

    def _crash_then_change(self, env, ref, served, new):
        r = env.run(ref, kill_during='root-fetch:0')
        assert killed(r), r
        part = [p for p in temporaries(env.instances)
                if p.endswith('.part')]
        assert part and 0 < os.path.getsize(part[0]) < os.path.getsize(new)
        replacement = served + '.new'
        shutil.copyfile(new, replacement)
        os.replace(replacement, served)
        return first_run_id(r)

    def _resumed_base(self, env, run_id):
        r = env.cli('resume', run_id)
        assert r.rc == 0, r
        assert temporaries(env.instances) == []
        return content_digest(base_of(env, run_id))

    @pytest.mark.parametrize('server_args', [
        {},                       # ETag and If-Range, as nginx and Apache
        {'validators': False},    # no ETag, no Last-Modified
        {'if_range': False},      # ETag, but If-Range ignored
    ], ids=['if-range', 'no-validators', 'if-range-ignored'])
    def test_http_image_replaced_between_crash_and_resume(
            self, tmp_path, versions, server_args):
        v1, v2 = versions
        root = tmp_path / 'served'
        root.mkdir()
        served = str(root / 'disk.raw')
        shutil.copyfile(v1, served)
        env = Env(tmp_path / 'env')
        with httpserver.Server(root, **server_args) as server:
            run_id = self._crash_then_change(env, server.url('disk.raw'),
                                             served, v2)
            server.reset()
            assert self._resumed_base(env, run_id) == content_digest(v2)
            resumed = server.gets('disk.raw')
        assert resumed[-1]['sent'] == os.path.getsize(v2)  # from byte 0
        if not server_args:
            assert resumed[0]['headers'].get('If-Range', '').startswith('"')

    def test_http_image_unchanged_continues(self, tmp_path, versions):
        v1, _ = versions
        root = tmp_path / 'served'
        root.mkdir()
        shutil.copyfile(v1, root / 'disk.raw')
        env = Env(tmp_path / 'env')
        with httpserver.Server(root) as server:
            r = env.run(server.url('disk.raw'), kill_during='root-fetch:0')
            assert killed(r), r
            have = os.path.getsize(temporaries(env.instances)[0])
            server.reset()
            assert self._resumed_base(env, first_run_id(r)) == (
                content_digest(v1))
            resumed = server.gets('disk.raw')
        assert [g['range'] for g in resumed] == [f'bytes={have}-']
        assert resumed[0]['sent'] == os.path.getsize(v1) - have

    def test_local_file_replaced_between_crash_and_resume(
            self, tmp_path, versions):
        v1, v2 = versions
        served = str(tmp_path / 'disk.raw')
        shutil.copyfile(v1, served)
        env = Env(tmp_path / 'env')
        run_id = self._crash_then_change(env, served, served, v2)
        assert self._resumed_base(env, run_id) == content_digest(v2)

    def test_local_file_rewritten_in_place(self, tmp_path, versions):
        """Same inode, same length, new bytes: the mtime tells."""
        v1, v2 = versions
        served = str(tmp_path / 'disk.raw')
        shutil.copyfile(v1, served)
        env = Env(tmp_path / 'env')
        r = env.run(served, kill_during='root-fetch:0')
        assert killed(r), r
        with open(v2, 'rb') as src, open(served, 'r+b') as dst:
            shutil.copyfileobj(src, dst)
        assert self._resumed_base(env, first_run_id(r)) == (
            content_digest(v2))


# -- the cache key of a local image ------------------------------------------

class TestLocalCacheKey:
    def _two_dirs(self, tmp_path):
        made = {}
        for name in ('a', 'b'):
            d = tmp_path / name
            d.mkdir()
            raw = ext4_raw(str(d / 'disk.raw'),
                           {f'{name}.txt': name.encode() * 100000})
            images.convert(raw, str(d / 'disk.qcow2'), 'qcow2')
            made[name] = (str(d), raw)
        return made

    def _run_in(self, env, cwd, image, instance, command='run'):
        p = subprocess.Popen(
            env.argv([command, '--image', image, '--instance', instance,
                      '--root-gb', '1']),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env.environ(), cwd=cwd)
        return finish(p)

    def test_same_relative_path_in_two_directories(self, tmp_path):
        made = self._two_dirs(tmp_path)
        env = Env(tmp_path / 'env')
        runs = {}
        for name, (cwd, _) in made.items():
            r = self._run_in(env, cwd, 'disk.qcow2', f'vm-{name}')
            assert r.rc == 0, r
            runs[name] = first_run_id(r)
        assert env.result(runs['b'], 'root-fetch')['cached'] is False
        for name, (_, raw) in made.items():
            assert content_digest(base_of(env, runs[name])) == (
                content_digest(raw))

    def test_one_image_by_three_names_is_cached_once(self, tmp_path):
        made = self._two_dirs(tmp_path)
        cwd, _ = made['a']
        os.symlink(os.path.join(cwd, 'disk.qcow2'), tmp_path / 'link.qcow2')
        real = os.path.realpath(os.path.join(cwd, 'disk.qcow2'))
        env = Env(tmp_path / 'env')
        plan = self._run_in(env, str(tmp_path), 'link.qcow2', 'vm1', 'plan')
        assert plan.rc == 0, plan
        assert f"cache key: sha1 of '{real}'" in plan.out
        refs = ['disk.qcow2', 'file://' + os.path.join(cwd, 'disk.qcow2'),
                str(tmp_path / 'link.qcow2')]
        cached = []
        for i, ref in enumerate(refs):
            r = self._run_in(env, cwd, ref, f'vm{i}')
            assert r.rc == 0, r
            cached.append(env.result(first_run_id(r), 'root-fetch')['cached'])
        assert cached == [False, True, True]
        listed = json.loads(env.cli('runs', '--all', '--format',
                                    'json').out)
        assert {row['image'] for row in listed} == {real}


# -- credentials in an http URL ----------------------------------------------

USER, PASSWORD = 'alice', 'pw-7f3c9e21'


@pytest.fixture
def no_netrc(tmp_path, monkeypatch):
    """A HOME without .netrc and no $NETRC, for the runs started here."""
    home = tmp_path / 'home'
    home.mkdir()
    monkeypatch.setenv('HOME', str(home))
    monkeypatch.delenv('NETRC', raising=False)
    return home


class TestCredentialsInUrl:
    def _secret_url(self, server, name):
        return server.url(name).replace('http://',
                                        f'http://{USER}:{PASSWORD}@')

    def _everything_shown(self, env, run_id):
        shown = [env.cli('runs', '--all'), env.cli('runs', '--all',
                                                   '--format', 'json'),
                 env.cli('show', run_id), env.cli('show', run_id, '--format',
                                                  'json')]
        return ''.join(r.out + r.err for r in shown)

    def test_userinfo_is_used_never_stored_nor_shown(self, tmp_path,
                                                     versions, no_netrc):
        v1, _ = versions
        env = Env(tmp_path / 'env')
        with httpserver.Server(os.path.dirname(v1),
                               basic=(USER, PASSWORD)) as server:
            url = self._secret_url(server, 'v1.raw')
            plan = env.cli('plan', '--image', url, '--instance', 'vm1')
            r = env.run(url)
            assert r.rc == 0, r
            assert server.gets('v1.raw')[-1]['sent'] == os.path.getsize(v1)
        run_id = first_run_id(r)
        assert PASSWORD.encode() not in db_bytes(env)
        assert PASSWORD not in r.out + r.err + plan.out + plan.err
        shown = self._everything_shown(env, run_id)
        assert PASSWORD not in shown and server.url('v1.raw') in shown
        assert content_digest(base_of(env, run_id)) == content_digest(v1)

    def test_resume_in_a_new_process_reads_netrc(self, tmp_path, versions,
                                                 no_netrc, monkeypatch):
        v1, _ = versions
        env = Env(tmp_path / 'env')
        with httpserver.Server(os.path.dirname(v1),
                               basic=(USER, PASSWORD)) as server:
            r = env.run(self._secret_url(server, 'v1.raw'),
                        kill_during='root-fetch:0')
            assert killed(r), r
            run_id = first_run_id(r)
            r = env.cli('resume', run_id)
            assert r.rc == 1, r
            line = r.error_line()
            assert 'HTTP 401' in line and (
                'credentials are not stored with a run: put them in '
                '~/.netrc (or $NETRC)') in line
            netrc = tmp_path / 'netrc'
            netrc.write_text(f'machine 127.0.0.1 login {USER} '
                             f'password {PASSWORD}\n')
            netrc.chmod(0o600)
            monkeypatch.setenv('NETRC', str(netrc))
            r = env.cli('resume', run_id)
            assert r.rc == 0, r
        assert PASSWORD.encode() not in db_bytes(env)
        assert PASSWORD not in self._everything_shown(env, run_id)
        assert content_digest(base_of(env, run_id)) == content_digest(v1)

    def test_credentials_of_a_malformed_url_are_not_echoed(self, tmp_path):
        env = Env(tmp_path / 'env')
        r = env.run(f'http://{USER}:{PASSWORD}@[::1/disk.qcow2')
        assert r.rc == 2, r
        assert PASSWORD not in r.error_line()
        assert env.run_ids() == []


# -- Content-Encoding ---------------------------------------------------------

class TestContentEncoding:
    def test_gzip_body_is_refused(self, tmp_path, versions):
        v1, _ = versions
        env = Env(tmp_path / 'env')
        with httpserver.Server(os.path.dirname(v1),
                               encoding='gzip') as server:
            r = env.run(server.url('v1.raw'))
            accepted = server.header('Accept-Encoding')
        assert r.rc == 1, r
        assert r.error_line().endswith(
            f"{server.url('v1.raw')}: the server sent the image with "
            "Content-Encoding 'gzip'; only the unencoded image is accepted")
        assert accepted == ['identity']
        assert temporaries(env.instances) == []
        assert os.listdir(os.path.join(env.instances, '_base')) == []

    def test_identity_encoding_is_accepted(self, tmp_path, versions):
        v1, _ = versions
        env = Env(tmp_path / 'env')
        with httpserver.Server(os.path.dirname(v1),
                               encoding='identity') as server:
            r = env.run(server.url('v1.raw'))
        assert r.rc == 0, r
        assert content_digest(base_of(env, first_run_id(r))) == (
            content_digest(v1))


# -- a slow link --------------------------------------------------------------

class TestSlowLink:
    """At a few KiB/s the part grows and progress is reported long before a
    1 MiB chunk could have filled."""

    def _fetch_in_thread(self, ref, glance, part, base):
        task = Fetch('fetch')
        events, done = [], {}
        task.notifier.register(tf_task.EVENT_UPDATE_PROGRESS,
                               lambda _, details: events.append(details))

        def fetch():
            done['result'] = task.execute(image=ref, glance=glance,
                                          part=part, base=base, lock=None)
        thread = threading.Thread(target=fetch, daemon=True)
        thread.start()
        return thread, events, done

    @pytest.mark.parametrize('kind', ['http', 'glance'])
    def test_part_and_progress_grow_on_a_slow_link(self, tmp_path, versions,
                                                   kind):
        v1, _ = versions
        image_id = '3c2a1f0e-9d8b-4c7a-8e6f-5d4c3b2a1f0e'
        part, base = str(tmp_path / 'x.part'), str(tmp_path / 'x')
        with httpserver.Server(os.path.dirname(v1), rate=8192) as server:
            server.add_image(image_id, 'v1.raw', size=os.path.getsize(v1))
            ref, glance = server.url('v1.raw'), None
            if kind == 'glance':
                ref, glance = image_id, {'api_servers': [server.base_url]}
            thread, events, done = self._fetch_in_thread(ref, glance, part,
                                                         base)
            try:
                # 1 MiB at 8 KiB/s takes 128 s: a chunk filled to 1 MiB
                # first would time these waits out
                wait_for(lambda: os.path.exists(part)
                         and os.path.getsize(part) > 0, 'the part to grow')
                wait_for(lambda: len(events) >= 2, 'two progress reports')
            finally:
                server.rate = None
                thread.join(60)
        assert 0 < events[0]['done'] < CHUNK_SIZE
        assert events[0]['done'] < events[1]['done'] < CHUNK_SIZE
        assert done['result']['size'] == os.path.getsize(v1)
        assert content_digest(part) == content_digest(v1)


# -- a URL that does not parse ------------------------------------------------

class TestMalformedUrl:
    @pytest.mark.parametrize('url', [
        'http://[::1',                     # the reproducer
        'http://127.0.0.1:99999/disk.qcow2',
        'https://127.0.0.1:port/disk.qcow2',
        'http:///disk.qcow2',
    ])
    def test_refused_before_anything_is_stored(self, tmp_path, url):
        env = Env(tmp_path / 'env')
        for command in ('plan', 'run'):
            r = env.cli(command, '--image', url, '--instance', 'vm1')
            assert r.rc == 2, r
            assert r.error_line().startswith(
                f'imagepipe: error: --image {url!r}: ')
        assert env.run_ids() == []
        assert not os.path.exists(env.instances)
