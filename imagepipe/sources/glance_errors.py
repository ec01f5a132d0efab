"""What went wrong talking to Glance, as the one line a user reads.

keystoneauth1, requests and urllib3 wrap a refused connection or a reset
into reprs of reprs; these pull out the errno and its words. An HTTP error
keeps its status and Glance's own short reason, not webob's boilerplate.
"""

from http import client as http_client
import re

from keystoneauth1 import exceptions as ks_exc
import requests
import urllib3

#: What reading a response body raises when the connection breaks.
READ_ERRORS = (OSError, http_client.HTTPException,
               urllib3.exceptions.HTTPError,
               requests.exceptions.RequestException)

#: What a request raises when the server cannot be reached.
UNREACHABLE = (ks_exc.ConnectionError, ks_exc.RetriableConnectionFailure)

_ERRNO = re.compile(r'\[Errno -?\d+\] [^\'")\]]+')
_ERRNO_REPR = re.compile(r"\w+Error\((-?\d+), '([^']*)'\)")
_WORDS_REPR = re.compile(r"\w+\('([^']+)'\)")
_TLS = re.compile(r'\[SSL: [A-Z_]+\] ([^(\'"]+)')


def reason(error):
    """A short reason for a connection, read or auth error, on one line."""
    text = str(error)
    found = _ERRNO.search(text)
    if found:
        return found.group(0).strip()
    found = _ERRNO_REPR.search(text)      # ConnectionResetError(104, '...')
    if found:
        return f'[Errno {found.group(1)}] {found.group(2)}'
    if 'timed out' in text.lower():
        return 'timed out'
    if isinstance(error, urllib3.exceptions.ProtocolError) and error.args:
        text = str(error.args[0])     # not the tuple of (text, cause)
    elif isinstance(error, ks_exc.ConnectionError):
        found = _WORDS_REPR.search(text)   # RemoteDisconnected('...')
        if found:
            return found.group(1)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(error).__name__


def tls_reason(error):
    """What the TLS handshake refused, e.g. "certificate verify failed:
    self-signed certificate"."""
    found = _TLS.search(str(error))
    return found.group(1).strip() if found else reason(error)


def explain(response):
    """``HTTP nnn`` and the gist of what the server said; closes it."""
    try:
        text = response.raw.read(2048, decode_content=True) or b''
    except READ_ERRORS:
        text = b''
    response.close()
    text = re.sub(r'<[^>]*>', ' ', text.decode('utf-8', 'replace'))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A short last line is Glance's own reason ("No image found with ID
    # ..."); a long one is webob's boilerplate for the status.
    said = f': {lines[-1]}' if lines and len(lines[-1]) <= 150 else ''
    return f'HTTP {response.status_code}{said}'
