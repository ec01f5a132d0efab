"""Which version of an image a partial download holds.

A ``.part`` left by a crash may be continued only from the version of the
image it was begun with: a server may have been given a new image of the
same length since, or a local file rewritten. Each source says what
identifies the version it serves (``Stream.identity``: a strong ETag or
else Last-Modified for HTTP, the checksum and size for Glance, size, mtime
and inode for a local file) and continues from an offset only when the
version is the one recorded; the part records it in an extended attribute
of its own, set before its first byte and gone with it (on rename too: the
base keeps it, harmlessly).

A filesystem without user extended attributes records nothing: every
download there starts over, which is safe.
"""

import errno
import json
import os

#: The extended attribute of a ``.part`` holding its source's identity.
XATTR = 'user.imagepipe.source'

#: What getxattr and setxattr fail with where there is no such attribute
#: or no support for them.
_ABSENT = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)


def recorded(fd):
    """The identity recorded on the open file ``fd``, or None."""
    try:
        value = json.loads(os.getxattr(fd, XATTR))
    except OSError as e:
        if e.errno in _ABSENT:
            return None
        raise
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def record(fd, identity):
    """Record ``identity`` (a JSON dict) on ``fd``; None forgets it."""
    try:
        if identity is None:
            os.removexattr(fd, XATTR)
        else:
            os.setxattr(fd, XATTR, json.dumps(identity,
                                              sort_keys=True).encode())
    except OSError as e:
        if e.errno not in _ABSENT:
            raise
