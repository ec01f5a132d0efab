"""Who imagepipe is to Glance: a fixed token, Keystone auth, or nobody.

The Fetch task's ``glance`` dict is stored with the run, so the command line
never puts credentials in it. They come from the environment, as the
``openstack`` client reads them (:data:`ENV_AUTH`): ``OS_TOKEN`` for a fixed
token, or ``OS_AUTH_URL`` and the rest for Keystone auth; a resumed run reads
them again. With none of these no credentials are sent (a no-auth Glance).
"""

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import token_endpoint

from imagepipe import exception
from imagepipe.sources import glance_errors

#: keystoneauth1 parameter of each environment variable the openstack
#: client reads; OS_TOKEN is a fixed token.
ENV_AUTH = {
    'OS_AUTH_TYPE': 'auth_type',
    'OS_AUTH_URL': 'auth_url',
    'OS_USERNAME': 'username',
    'OS_USER_ID': 'user_id',
    'OS_PASSWORD': 'password',
    'OS_PROJECT_NAME': 'project_name',
    'OS_PROJECT_ID': 'project_id',
    'OS_USER_DOMAIN_NAME': 'user_domain_name',
    'OS_USER_DOMAIN_ID': 'user_domain_id',
    'OS_PROJECT_DOMAIN_NAME': 'project_domain_name',
    'OS_PROJECT_DOMAIN_ID': 'project_domain_id',
    'OS_APPLICATION_CREDENTIAL_ID': 'application_credential_id',
    'OS_APPLICATION_CREDENTIAL_SECRET': 'application_credential_secret',
}
#: the same for the session and the catalog lookup
ENV_OTHER = {'OS_REGION_NAME': 'region_name', 'OS_INTERFACE': 'interface',
             'OS_CACERT': 'cafile'}


def with_env_credentials(glance, environ):
    """``glance`` with the environment's credentials when it has none."""
    if glance.get('token') or glance.get('auth'):
        return glance
    found = {key: environ[var] for var, key in ENV_OTHER.items()
             if environ.get(var)}
    if environ.get('OS_TOKEN'):
        found['token'] = environ['OS_TOKEN']
    elif environ.get('OS_AUTH_URL'):
        found['auth'] = {key: environ[var] for var, key in ENV_AUTH.items()
                         if environ.get(var)}
    return {**found, **glance}


def plugin(ref, glance):
    """The keystoneauth1 auth plugin the dict asks for, or None."""
    token, auth = glance.get('token'), glance.get('auth')
    if token and auth:
        raise exception.SourceError(
            f'{ref}: give Glance either a token or auth parameters, not both')
    if token:
        return token_endpoint.Token(None, token)
    if not auth:
        return None
    params = dict(auth)
    auth_type = params.pop('auth_type', None) or 'password'
    try:
        return ks_loading.get_plugin_loader(auth_type).load_from_options(
            **params)
    except ks_exc.ClientException as e:
        raise exception.SourceError(
            f'{ref}: Glance auth ({auth_type}): '
            f'{glance_errors.reason(e)}') from None


def authenticate(ref, session):
    """Get a token now, so a Keystone failure is named as such."""
    try:
        session.get_auth_headers()
    except ks_exc.ClientException as e:
        raise exception.SourceError(
            f'{ref}: Keystone authentication failed: '
            f'{glance_errors.reason(e)}') from None
