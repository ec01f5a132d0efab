"""The Glance API servers a run talks to, and the failover between them.

One keystoneauth1 Session carries the credentials, the TLS verification and
the timeout. A request goes to the configured servers in turn, as Nova's
GlanceClientWrapper.call did (nova/image/glance.py@2014.2.4, and its
_call_retry at 2012.1.3): ``1 + num_retries`` attempts, the next server on
each, a pause of a second between them, and only a server that cannot be
reached (or answers 503, Service Unavailable) is given up for the next. Any
other answer is final. Nova shuffled the servers first; imagepipe keeps
their order, so that a run is repeatable (the first server is the preferred
one).
"""

import re
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session

from imagepipe import exception
from imagepipe.sources import base
from imagepipe.sources import glance_auth
from imagepipe.sources import glance_errors
from imagepipe.sources import http as http_source

_VERSION_SUFFIX = re.compile(r'/v\d+(\.\d+)?/?$')

#: seconds between two attempts (Nova's time.sleep(1))
RETRY_PAUSE = 1.0


def session(ref, glance):
    """A keystoneauth1 Session with the dict's credentials and TLS
    settings: ``insecure`` skips certificate verification (Nova's [glance]
    api_insecure, later insecure), ``cafile`` verifies against a bundle."""
    verify = True
    if glance.get('insecure'):
        verify = False
    elif glance.get('cafile'):
        verify = glance['cafile']
    return ks_session.Session(auth=glance_auth.plugin(ref, glance),
                              verify=verify, timeout=http_source.TIMEOUT,
                              user_agent='imagepipe')


def servers(ref, glance, sess):
    """Base URLs: the configured ones, else the catalog's image endpoint."""
    found = [s.rstrip('/') for s in glance.get('api_servers') or ()]
    if found:
        return found
    if not glance.get('auth'):
        raise exception.SourceError(
            f'{ref}: no Glance api_servers given and no auth to find the '
            'image endpoint in the Keystone catalog')
    try:
        url = sess.get_endpoint(
            service_type='image', interface=glance.get('interface') or
            'public', region_name=glance.get('region_name'))
    except ks_exc.ClientException as e:
        raise exception.SourceError(
            f'{ref}: finding the image endpoint in the Keystone catalog '
            f'failed: {glance_errors.reason(e)}') from None
    if not url:
        raise exception.SourceError(
            f'{ref}: the Keystone catalog has no image endpoint')
    return [_VERSION_SUFFIX.sub('', url.rstrip('/'))]


class Api:
    """GET requests to the Glance servers of one image source."""

    def __init__(self, ref, glance):
        self.ref = ref
        self.session = session(ref, glance)
        if glance.get('auth'):
            glance_auth.authenticate(ref, self.session)
        self.servers = servers(ref, glance, self.session)
        self.attempts = 1 + int(glance.get('num_retries') or 0)

    def first_answer(self, path, offset):
        """The first answer that is not a connection failure nor a 503.

        Raises :class:`base.Unreachable` (a SourceError) when every attempt
        failed so, SourceError on other errors.
        """
        failures = []
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(RETRY_PAUSE)
            url = self.servers[attempt % len(self.servers)] + path
            try:
                response = self._get(url, offset)
            except base.Unreachable as e:
                failures.append(str(e))
                continue
            if response.status_code == 503:
                failures.append(f'{url}: {glance_errors.explain(response)}')
                continue
            if response.status_code == 416 and offset:
                # Past the end: the part is longer than the image; start over.
                response.close()
                return self.first_answer(path, 0)
            if response.status_code >= 400:
                what = http_source.STATUS_WORDS.get(response.status_code,
                                                    'refused')
                hint = http_source.STATUS_HINTS.get(response.status_code)
                raise exception.SourceError(
                    f'{self.ref}: {url}: {what} '
                    f'({glance_errors.explain(response)})'
                    + (f': {hint}' if hint else ''))
            return response
        raise base.Unreachable(
            f'no Glance API server reachable ({"; ".join(failures)})')

    def _get(self, url, offset):
        headers = {'Accept-Encoding': 'identity'}
        if offset:
            headers['Range'] = f'bytes={offset}-'
        try:
            return self.session.get(url, headers=headers, stream=True,
                                    raise_exc=False, connect_retries=0)
        except ks_exc.SSLError as e:
            # glanceclient counted it a communication error, retried too
            raise base.Unreachable(
                f'{url}: TLS failed: {glance_errors.tls_reason(e)} ([glance] '
                'insecure skips the verification)') from None
        except glance_errors.UNREACHABLE as e:
            raise base.Unreachable(
                f'{url}: unreachable: {glance_errors.reason(e)}') from None
        except ks_exc.ClientException as e:
            # Getting a token failed (Keystone refused or was unreachable).
            raise exception.SourceError(
                f'{self.ref}: authentication failed: '
                f'{glance_errors.reason(e)}') from None
