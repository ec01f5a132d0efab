"""``imagepipe boot``: a run posted to a host's conductor.

The run is made as ``run`` makes it (the same flow, factory details, graph
fingerprint and refusals) and stored in the run database without being
driven; a job carrying its id is posted on the host's board. The run id is
the first line printed (``run <RUN>``). ``--wait`` follows the job until the
host's conductor is done with it and exits as ``run`` would: 0 succeeded,
1 failed, 2 refused, 130 suspended; after ``--timeout`` seconds one line
says where the job stands (it stays posted) and the exit status is 1.
While it waits it looks at the board when the host's conductor says a job
ended (:mod:`imagepipe.fleet.wakeup`'s channel), every :data:`POLL` s
at the latest.

The flow is built from this command's configuration, which must therefore
be the host's (its instances_path, images_type and the like).
"""

import os
import socket
import sys
import time

from imagepipe import exception
from imagepipe.cmd import database
from imagepipe.cmd import outcome
from imagepipe.cmd import plan as plan_cmd
from imagepipe.fleet import board as boards
from imagepipe.fleet import wakeup
from imagepipe.runner import driver
from imagepipe.runner import persistence

#: seconds between two looks at the board while waiting, at most
POLL = 0.2


def _who():
    return f'boot.{socket.gethostname()}.{os.getpid()}'


def run(args, ctx):
    settings = boards.settings(ctx.rconf, args.target_host)
    flow, kwargs = plan_cmd.build_flow(args, ctx)
    connection = database.connection(ctx)
    with persistence.usable(connection):
        store = database.store(ctx)
        with boards.opened(settings, settings.host, _who()) as board:
            run_id = driver.create(store, kwargs, flow, database.lock_dir(ctx))
            job = boards.post(board, run_id)
            print(f'run {run_id}', flush=True)
            if not args.wait:
                return 0
            return _follow(args, settings, board, store, job, run_id)


def _job_now(board, job):
    for found in board.iterjobs(ensure_fresh=True):
        if found.uuid == job.uuid:
            return found
    return None


def _follow(args, settings, board, store, job, run_id):
    waker = wakeup.Wakeup(settings, settings.host, period=POLL)
    try:
        return _followed(args, settings, board, store, job, run_id, waker)
    finally:
        waker.close()


def _followed(args, settings, board, store, job, run_id, waker):
    deadline = (None if args.timeout is None
                else time.monotonic() + args.timeout)
    while _job_now(board, job) is not None:
        if deadline is not None and time.monotonic() > deadline:
            owner = boards.owner(board, job)
            where = (f'claimed by {owner}' if owner else
                     'unclaimed (no conductor of the host took it)')
            print(f'imagepipe: error: run {run_id} not finished after '
                  f'{args.timeout:g}s: its job on the board of host '
                  f'{settings.host} is {where}; it stays posted',
                  file=sys.stderr)
            return 1
        waker.wait()
    fd = store.get(run_id)
    meta = fd.meta.get('imagepipe', {})
    if fd.state is None:
        raise exception.RunError(
            f'run {run_id} was taken off the board without being run: see '
            "the conductor's log")
    return outcome.exit_status(run_id, fd.state, meta.get('failed_step'),
                               meta.get('error'), meta)
