"""imagepipe boots in one warm process, driven as nova_peer_driver.py is.

``python -m benchmarks.peer_inproc --conf C --release R --image ID
--root-gb N`` reads one instance name a line on stdin and answers each with
one JSON line, ``{"seconds": ...}``: the flow built by flows.factory and run
by driver.start, the path of ``imagepipe run`` without the interpreter's
start, with the lock directory ``run`` would use. Case 10 sets it beside
Nova's own code run the same way.
"""

import argparse
import json
import sys
import time

from taskflow import states

from benchmarks import harness
from benchmarks import inproc
from imagepipe import flows
from imagepipe.runner import driver
from imagepipe.runner import guards


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.peer_inproc')
    parser.add_argument('--conf', required=True)
    parser.add_argument('--release', required=True)
    parser.add_argument('--image', required=True)
    parser.add_argument('--root-gb', type=int, required=True)
    args = parser.parse_args(argv)
    kwargs = inproc._release_kwargs(args, 'unused')
    settings = kwargs['settings']
    store = inproc._store(kwargs)
    lock_dir = guards.lock_dir(settings['connection'],
                               settings['state_path'])
    for line in sys.stdin:
        kwargs['request']['instance'] = line.strip()
        start = time.perf_counter()
        flow = flows.factory(**kwargs)
        _, state, _, error = driver.start(store, kwargs, flow, lock_dir)
        took = time.perf_counter() - start
        if state != states.SUCCESS:
            raise harness.Failed(f'in-process boot ended {state}: {error}')
        print(json.dumps({'seconds': took}), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
