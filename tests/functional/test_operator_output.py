"""What an operator reads: listings, units, progress, the debug log, the
help; and that the commands which only read create nothing."""

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

from tests import httpserver
from tests.functional.runner_env import Env
from tests.functional.runner_env import all_files
from tests.functional.runner_env import first_run_id

FOLSOM_STEPS = ['root-fetch', 'root-inspect', 'root-convert', 'root-publish',
                'root-copy-base', 'root-resize-base', 'root-resize-fs-base',
                'root-overlay', 'verify']


def _created(root, before):
    return sorted(set(all_files(root)) - set(before))


def test_read_only_commands_create_nothing(tmp_path, small):
    env = Env(tmp_path / 'env')
    before = all_files(env.root)
    runs = env.cli('runs')
    assert runs.rc == 0, runs
    assert runs.err == (f'imagepipe: no runs yet: no run database at '
                        f'{env.db}\n')
    shown = env.cli('show', '0123')
    assert shown.rc == 2, shown
    assert shown.error_line() == ("imagepipe: error: no run matches '0123': "
                                  'no runs yet')
    for args in (['config'], ['plan', '--image', small[1], '--instance',
                              'vm1'], ['runs', '--all', '-f', 'json']):
        assert env.cli(*args).rc == 0
    assert _created(env.root, before) == []
    assert not os.path.exists(env.state)

    run = env.run(small[1])
    assert run.rc == 0, run
    run_id = first_run_id(run)
    before = all_files(env.root)
    for args in (['runs'], ['show', run_id], ['runs', '--all']):
        assert env.cli(*args).rc == 0
    assert _created(env.root, before) == []


def test_defaults_named_without_a_config_file(tmp_path):
    """No --config-file: a read says which database it looked for and
    which defaults are in force, and makes nothing under /var/lib/nova."""
    p = subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main', 'runs'],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines() == [
        'imagepipe: no runs yet: no run database at '
        "/var/lib/nova/imagepipe.sqlite (no --config-file: Nova's defaults "
        'are in force, state_path /var/lib/nova, instances_path '
        '/var/lib/nova/instances)']
    assert not os.path.exists('/var/lib/nova')


def test_a_run_lists_its_steps_once_and_runs_shows_it(tmp_path, small):
    env = Env(tmp_path / 'env')
    run = env.run(small[1])
    assert run.rc == 0, run
    run_id = first_run_id(run)
    for step in FOLSOM_STEPS:
        assert len(re.findall(rf'^{step}\b', run.out, re.M)) == 1, run.out
    files = run.out.split('\n\n', 1)[1].splitlines()
    assert files[0].split() == ['FILE', 'SIZE', 'ALLOCATED']
    assert re.search(r'\s1\.0 GiB\s', run.out), files   # the resized base
    assert str(1024 ** 3) not in run.out
    assert all(len(line) <= 100 for line in run.out.splitlines())

    listed = env.cli('runs')                    # the last runs by default
    assert listed.rc == 0, listed
    header, rule, row = listed.out.splitlines()[:3]
    assert header.split()[:4] == ['RUN', 'RELEASE', 'INSTANCE', 'STATE']
    assert row.split()[:4] == [run_id[:8], 'folsom', 'vm1', 'SUCCESS']
    assert re.search(r'\s\d+\.\d\ds\s', row), row
    assert all(len(line) <= 100 for line in listed.out.splitlines())

    rows = env.cli('runs', '-f', 'json').json()
    assert [(r['id'], r['state'], r['unfinished']) for r in rows] == [
        (run_id, 'SUCCESS', False)]
    assert isinstance(rows[0]['duration'], float)
    value = env.cli('runs', '-f', 'value', '-c', 'id', '-c', 'state')
    assert value.out == f'{run_id} SUCCESS\n'
    table = list(csv.reader(io.StringIO(env.cli('runs', '-f', 'csv').out)))
    assert table[0][:2] == ['RUN', 'RELEASE'] and table[1][0] == run_id
    bad = env.cli('runs', '-c', 'colour')
    assert bad.rc == 2 and bad.error_line().startswith(
        'imagepipe: error: -c colour: no such column')


def test_runs_marks_unfinished_and_limits(tmp_path, small):
    env = Env(tmp_path / 'env')
    for i in range(3):
        assert env.run(small[1], f'vm{i}').rc == 0
    crashed = env.run(small[1], 'vm9', kill_after='root-convert')
    crashed_id = first_run_id(crashed)
    ids = [r['id'] for r in env.cli('runs', '--all', '-f', 'json').json()]
    assert len(ids) == 4
    last = env.cli('runs', '--limit', '1', '-f', 'value', '-c', 'id')
    assert last.out.split() == [crashed_id]
    two = env.cli('runs', '--limit', '2')
    lines = two.out.splitlines()[2:]
    assert [ln.split()[0] for ln in lines if ln[:1].strip()] == [
        i[:8] for i in ids[2:]]
    # left RUNNING by a killed process: resumable, shown INTERRUPTED
    assert any(ln.startswith(crashed_id[:8]) and 'INTERRUPTED' in ln
               for ln in lines), two.out
    assert '(unfinished)' in two.out


def test_show_renders_results_as_rows(tmp_path, small):
    env = Env(tmp_path / 'env')
    run_id = first_run_id(env.run(small[1]))
    shown = env.cli('show', run_id)
    assert shown.rc == 0, shown
    lines = shown.out.splitlines()
    assert [ln.split()[:2] for ln in lines[4:4 + len(FOLSOM_STEPS)]] == [
        [s, 'SUCCESS'] for s in FOLSOM_STEPS]
    assert '{' not in shown.out and '"' not in shown.out
    results = shown.out.split('\n\n', 1)[1].splitlines()
    assert results[0].split() == ['STEP', 'RESULT', 'VALUE']
    sized = [ln for ln in results if ln.startswith('root-fetch')
             and ' size ' in ln]
    assert re.search(r'size\s+\d+\.\d [KM]iB \(\d+ bytes\)', sized[0]), results
    assert all(len(line) <= 100 for line in lines)


def test_progress_is_logged_when_output_is_not_a_terminal(tmp_path,
                                                          served):
    """A download of several seconds, --format json: progress lines on
    stderr, stdout one JSON document."""
    directory, _ = served
    env = Env(tmp_path / 'env')
    with httpserver.Server(directory, rate=2 * 1024 * 1024) as server:
        run = env.run(server.url('big.qcow2'), 'vm1', '--format', 'json')
    assert run.rc == 0, run
    assert json.loads(run.out)['state'] == 'SUCCESS'
    progress = [ln for ln in run.err.splitlines()
                if ln.startswith('INFO: root-fetch: ')]
    assert progress, run.err
    assert re.fullmatch(r'INFO: root-fetch:\s+\d+\.\d%  [\d.]+ MiB of '
                        r'[\d.]+ MiB  [\d.]+ MiB/s  \d+ s left',
                        progress[0]), progress


def test_debug_logs_commands_and_step_states_without_secrets(tmp_path,
                                                             small):
    env = Env(tmp_path / 'env')
    shutil.copy(small[1], tmp_path / 'small.qcow2')
    with httpserver.Server(tmp_path, basic=('admin', 's3cr3t')) as server:
        url = server.url('small.qcow2').replace('//', '//admin:s3cr3t@')
        run = env.cli('--debug', 'run', '--image', url, '--instance', 'vm1',
                      '--root-gb', '1')
    assert run.rc == 0, run
    assert re.search(r'ran qemu-img convert .* -O raw .*: exit status 0 in '
                     r'\d+\.\d\ds', run.err), run.err
    assert re.search(r"Task 'root-publish' \(\S+\) transitioned into "
                     r"state 'SUCCESS'", run.err), run.err
    assert 's3cr3t' not in run.err + run.out


def test_version_and_help_list_the_commands_first():
    p = subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main',
                        '--version'], capture_output=True, text=True)
    assert p.returncode == 0 and re.fullmatch(r'\d+\.\d+\.\d+\S*\n',
                                              p.stdout), p
    p = subprocess.run([sys.executable, '-m', 'imagepipe.cmd.main',
                        '--help'], capture_output=True, text=True)
    assert p.returncode == 0, p
    lines = p.stdout.splitlines()
    assert lines[2] == 'commands:'
    assert lines[3].split()[0] == 'demo'
    assert '--shell_completion' not in p.stdout
    assert '--nodebug' not in p.stdout
    assert all(len(line) <= 100 for line in lines)
