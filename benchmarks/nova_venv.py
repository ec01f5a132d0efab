"""The virtualenv holding Nova for case 10, made on first use.

``pip install 'nova==33.*'`` into a venv of its own (nova brings ~280
packages that must not reach imagepipe's), by the Python running the
benchmark. It lives in ``$IMAGEPIPE_BENCH_NOVA_VENV`` when that is set
(a directory kept across work directories), else in ``WORKDIR/nova-venv``.
A stamp file names the spec it was made for; a venv without it (an
interrupted build) or for another spec is made again.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks import harness

SPEC = 'nova==33.*'
ENV = 'IMAGEPIPE_BENCH_NOVA_VENV'
STAMP = 'imagepipe-bench.json'


def directory(workdir):
    return os.path.abspath(os.environ.get(ENV)
                           or os.path.join(workdir, 'nova-venv'))


def python(workdir, log):
    """(the venv's python, seconds its build took now or None if reused)."""
    venv = directory(workdir)
    exe = os.path.join(venv, 'bin', 'python')
    stamp = os.path.join(venv, STAMP)
    try:
        with open(stamp) as f:
            if json.load(f)['spec'] == SPEC and os.path.exists(exe):
                return exe, None
    except (OSError, ValueError, KeyError):
        pass
    log(f'case 10: making {venv} with pip install {SPEC!r} (once) ...')
    shutil.rmtree(venv, ignore_errors=True)
    start = time.monotonic()
    for argv in ([sys.executable, '-m', 'venv', venv],
                 [exe, '-m', 'pip', 'install', '--quiet', SPEC]):
        harness.check(subprocess.run(argv, capture_output=True, text=True),
                      argv)
    took = time.monotonic() - start
    with open(stamp, 'w') as f:
        json.dump({'spec': SPEC, 'seconds': took}, f)
    return exe, took
