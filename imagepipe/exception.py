"""The one exception family the command line turns into a line and a status.

Every error a user can act on derives from ImagepipeError and carries a
one-line message. ConfigError means the request or configuration was wrong
(exit status 2); every other ImagepipeError raised inside a run means the run
failed and was reverted (exit status 1).
"""


class ImagepipeError(Exception):
    """An error with a message fit to show the user as one line."""

    exit_code = 1


class ConfigError(ImagepipeError):
    """Bad option value, unknown release, bad command-line usage."""

    exit_code = 2


class ToolMissing(ImagepipeError):
    """An external command the step needs is not installed."""


class ToolFailed(ImagepipeError):
    """An external command exited with a status the step does not accept."""


class ImageUnacceptable(ImagepipeError):
    """The image content is unsafe or not what it claims to be."""


class FlavorDiskTooSmall(ImageUnacceptable):
    """The image's virtual size is larger than the flavor's root disk."""


class SourceError(ImagepipeError):
    """The image could not be read from its source (server, file, Glance)."""


class NoSpace(ImagepipeError):
    """Not enough room on the host for the disk (ENOSPC, volume group full)."""


class ToolOutOfSpace(ToolFailed, NoSpace):
    """An external command failed because its output's filesystem is full."""


class NotSupported(ImagepipeError):
    """A configuration Nova accepted that imagepipe cannot run here."""


class RunError(ImagepipeError):
    """A run cannot be resumed or found as asked."""


class Refused(RunError):
    """A run was not started or resumed; nothing was done."""

    exit_code = 2


class Busy(Refused):
    """Refused because another process drives the run or builds its
    instance: it may be tried again once that one is done."""


class DatabaseUnusable(ConfigError):
    """The run database cannot be opened, read or written."""
