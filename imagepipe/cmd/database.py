"""The run database and lock directory a command uses, from its config.

Every command that reads or writes runs gets them here: the connection of
``[imagepipe] connection``, the run locks beside it
(:func:`imagepipe.runner.guards.lock_dir`), and a read-only opening that
makes nothing when there is no database yet.
"""

import sys

from imagepipe.runner import guards
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store


def connection(ctx):
    return ctx.rconf.conf.imagepipe.connection


def store(ctx):
    return run_store.RunStore(persistence.open_backend(connection(ctx)))


def existing_store(ctx, say=True):
    """The run store of a command that only reads: None when there is no
    run database yet (none is made, nor its directory), which ``say``
    says on stderr."""
    backend = persistence.open_backend(connection(ctx), create=False)
    if backend is None and say:
        print(f'imagepipe: no runs yet: no run database at '
              f'{persistence.describe(connection(ctx))}{defaults(ctx)}',
              file=sys.stderr)
    return backend and run_store.RunStore(backend)


def defaults(ctx):
    """Which defaults are in force when no configuration file was given
    (the text after a line that names a path under them)."""
    conf = ctx.rconf.conf
    if conf.config_file or conf.config_dir:
        return ''
    return (f" (no --config-file: Nova's defaults are in force, state_path "
            f"{ctx.rconf.value('state_path')}, instances_path "
            f"{ctx.rconf.value('instances_path')})")


def say_defaults(ctx):
    """One line on stderr before a command writes under the defaults."""
    if defaults(ctx):
        print(f'imagepipe: writing runs to '
              f'{persistence.describe(connection(ctx))} and disks under '
              f"{ctx.rconf.value('instances_path')}{defaults(ctx)}",
              file=sys.stderr)


def lock_dir(ctx):
    return guards.lock_dir(connection(ctx), ctx.rconf.value('state_path'))


def checked(handler):
    """``handler`` with the run database's failures as one error line."""
    def with_database(args, ctx):
        with persistence.usable(connection(ctx)):
            return handler(args, ctx)
    return with_database
