"""Release flows, found only through the ``imagepipe.flows`` entry points.

:func:`factory` is the one importable factory taskflow stores with every run
(``flow_detail.meta['factory']``) and calls again on resume; its arguments are
plain JSON, so the same arguments always rebuild the same graph.
"""

from stevedore import driver
from stevedore import extension

from imagepipe import exception

NAMESPACE = 'imagepipe.flows'
FACTORY = 'imagepipe.flows.factory'

_manager = None


def _extensions():
    global _manager
    if _manager is None:
        _manager = extension.ExtensionManager(
            NAMESPACE, invoke_on_load=False,
            on_load_failure_callback=_load_failed)
    return _manager


def _load_failed(manager, entrypoint, error):
    raise exception.ConfigError(
        f'release flow {entrypoint.name} ({entrypoint.value}) cannot be '
        f'loaded: {error}')


def registered():
    """{name: Release} of every installed release flow, oldest first."""
    found = {ext.name: ext.plugin for ext in _extensions()}
    return dict(sorted(found.items(), key=lambda kv: kv[1].date))


def get(name):
    releases = registered()
    try:
        return releases[name]
    except KeyError:
        raise exception.ConfigError(
            f'unknown release {name!r}: known releases are '
            f'{", ".join(releases)}') from None


#: operations other than a boot (a request naming its ``operation``):
#: name -> factory(release, settings, request)
OPERATIONS = 'imagepipe.operations'


def factory(release, settings, request):
    """The flow of ``release`` for ``request`` (both plain JSON)."""
    operation = request.get('operation')
    if operation is not None:
        return driver.DriverManager(OPERATIONS, operation).driver(
            release, settings, request)
    return get(release).build(settings, request)


def warnings(release, settings):
    """Lines on what ``settings`` make ``release`` do wrong (may be none).

    A release from another distribution need not know any: a plugin without
    a ``warnings`` method has none.
    """
    found = getattr(get(release), 'warnings', None)
    return list(found(settings)) if found else []
