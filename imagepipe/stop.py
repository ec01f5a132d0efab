"""The one request to stop a step in progress, process-wide.

The runner makes it on SIGINT or SIGTERM, once the engine is told to
suspend; the parts of a step that can last (the download loop, every
external command) check it and raise :class:`Stopped` within a fraction
of a second. The step fails with it, the engine (suspending) does not
revert, and the runner puts the step back to PENDING: resume runs it
again, a download continuing its ``.part``.
"""

import threading

from imagepipe import exception

#: Seconds between two looks at the request while waiting for a command.
POLL = 0.1

_requested = threading.Event()


class Stopped(exception.ImagepipeError):
    """A step stopped because its run is suspending; it runs again."""


def request():
    _requested.set()


def clear():
    _requested.clear()


def requested():
    return _requested.is_set()


def check(what):
    """Raise :class:`Stopped` (naming ``what`` was stopped) if requested."""
    if _requested.is_set():
        raise Stopped(f'{what} stopped: the run is suspending')
