"""``imagepipe conductor``: serve one host's board until SIGTERM.

Logs one line as each job starts and ends (run id and outcome) through
oslo.log. SIGTERM or SIGINT: no more claims, the running jobs suspend (the
step in progress stops at once and runs again when the job is taken
again), their jobs are left on the board, exit 0. The image cache
manager's pass runs every image_cache_manager_interval as the release's
nova-compute ran it (:mod:`imagepipe.fleet.periodic`).
"""

import logging
import os
import signal
import socket
import threading

from imagepipe.cmd import database
from imagepipe.fleet import board as boards
from imagepipe.fleet import conductor
from imagepipe.fleet import periodic
from imagepipe.runner import persistence

LOG = logging.getLogger('imagepipe.conductor')


def run(args, ctx):
    settings = boards.settings(ctx.rconf, args.target_host)
    connection = database.connection(ctx)
    with persistence.usable(connection):
        store = database.store(ctx)
        lock_dir = database.lock_dir(ctx)
        # a name of its own per process: taskflow refuses a claim to the
        # name that held it, so a restarted conductor must differ
        name = f'{settings.host}.{socket.gethostname()}.{os.getpid()}'
        with boards.opened(settings, settings.host, name,
                           persistence=store.backend) as board:
            serving = conductor.RunConductor(name, board, store, lock_dir,
                                             settings)
            passes = periodic.CachePasses(ctx.rconf, store, lock_dir)

            def on_signal(signum, frame):
                passes.stop()
                LOG.info('conductor %s: %s: claiming no more, suspending '
                         'the running jobs', name,
                         signal.Signals(signum).name)
                serving.stop()

            for s in (signal.SIGTERM, signal.SIGINT):
                signal.signal(s, on_signal)
            threading.Thread(target=serving.heartbeat, daemon=True).start()
            LOG.info('conductor %s: serving host %s (%d jobs at once, '
                     'claims of %ds)', name, settings.host, settings.max_jobs,
                     settings.expiration)
            passes.start()
            try:
                serving.run()
            finally:
                passes.stop()
                passes.join()
    LOG.info('conductor %s: stopped', name)
    return 0
