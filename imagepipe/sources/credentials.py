"""Credentials an http(s) image URL carries, kept out of every record.

A URL typed as ``http://user:password@host/path`` (or with a secret in its
query, such as ``?token=...``) is stored with the run, listed by ``runs``,
shown by ``show`` and ``plan`` and named in error lines without them
(:func:`keep`): the userinfo removed, query secrets masked with oslo.utils'
``mask_password`` (which by itself leaves a URL's userinfo alone). The URL
as typed stays in this process's memory only, so the run it started
downloads with it. A ``resume`` in another process finds the credentials
where curl and wget look for them, in ``~/.netrc`` or the file ``$NETRC``
names (:func:`for_url`).
"""

import base64
import netrc
import os
import re
import urllib.parse

from oslo_utils import strutils

from imagepipe import exception

#: ``scheme://userinfo@`` at the start of a URL, parsed or not (the
#: userinfo ends at the last ``@`` before the path, as urlsplit reads it).
_USERINFO = re.compile(r'^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@')

#: The URL as typed, by the URL shown: this process's memory only.
_TYPED = {}

#: What the 401 error line says when no credentials were sent.
WHERE_TO_PUT_THEM = ('credentials are not stored with a run: put them in '
                     '~/.netrc (or $NETRC)')


def shown(ref):
    """``ref`` as it may be stored and shown: no userinfo, secrets masked.

    Works on a URL that does not parse too, for its error line.
    """
    return strutils.mask_password(_USERINFO.sub(r'\1', ref))


def keep(ref):
    """``ref`` as shown; the URL as typed is remembered by this process."""
    public = shown(ref)
    if public != ref:
        _TYPED[public] = ref
    return public


def for_url(ref):
    """``(url, user, password, origin)`` to request the image ``ref`` names.

    ``url`` is the URL as typed in this process (``ref`` itself otherwise)
    without its userinfo; user and password come from that userinfo, else
    from the netrc file's entry for the host (None when neither has one);
    ``origin`` says which, for the error line of a 401.
    """
    typed = urllib.parse.urlsplit(_TYPED.get(ref, ref))
    url = typed._replace(netloc=typed.netloc.rpartition('@')[2]).geturl()
    if typed.username is not None:
        return (url, urllib.parse.unquote(typed.username),
                urllib.parse.unquote(typed.password or ''), 'the URL')
    path = os.environ.get('NETRC')
    try:
        # Without $NETRC, netrc refuses a ~/.netrc others may read.
        found = netrc.netrc(path).authenticators(typed.hostname or '')
    except FileNotFoundError:
        found = None
    except (OSError, netrc.NetrcParseError) as e:
        raise exception.SourceError(f'{ref}: netrc: {e}') from None
    if not found:
        return url, None, None, None
    return url, found[0], found[2] or '', path or '~/.netrc'


def basic_auth(user, password):
    """The ``Authorization`` header value of HTTP Basic authentication."""
    pair = f'{user}:{password}'.encode()
    return 'Basic ' + base64.b64encode(pair).decode('ascii')
