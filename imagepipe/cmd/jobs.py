"""``imagepipe jobs``: the jobs on the boards, one row each: host, run,
instance (from the run database), state (unclaimed or claimed), who holds
the claim and since when it was posted or last changed."""

import os
import socket

from imagepipe.cmd import database
from imagepipe.cmd import output
from imagepipe.fleet import board as boards
from imagepipe.runner import persistence


def _instance(store, run_id):
    if run_id is None:
        return None
    try:
        return store.get(run_id).meta.get('imagepipe', {}).get('instance')
    except Exception:  # noqa: BLE001 - a job whose run is gone still lists
        return None


def _row(board, store, host, job):
    owner = boards.owner(board, job)
    run_id = boards.run_of(job)
    since = job.last_modified or job.created_on
    return {'host': host, 'job': job.uuid, 'run': run_id,
            'instance': _instance(store, run_id),
            'state': 'claimed' if owner else 'unclaimed', 'owner': owner,
            'since': since.isoformat(timespec='seconds') if since else None}


def run(args, ctx):
    settings = boards.settings(ctx.rconf, args.target_host)
    who = f'jobs.{socket.gethostname()}.{os.getpid()}'
    rows = []
    with persistence.usable(database.connection(ctx)):
        store = database.store(ctx)
        hosts = ([args.target_host] if args.target_host
                 else boards.hosts(settings))
        for host in hosts:
            with boards.opened(settings, host, who) as board:
                rows += [_row(board, store, host, job)
                         for job in board.iterjobs(ensure_fresh=True)]
    output.emit(args, rows, [
        ('host', 'HOST'), ('run', 'RUN'), ('instance', 'INSTANCE'),
        ('state', 'STATE'), ('owner', 'CLAIMED BY'), ('since', 'SINCE')])
    return 0
