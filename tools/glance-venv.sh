#!/usr/bin/env bash
# A separate virtualenv holding a real Glance API (glance 33 + gunicorn) for
# the functional tests in tests/functional/test_glance.py. Glance pulls about
# 120 packages; they stay out of imagepipe's own virtualenv.
#
# Usage: tools/glance-venv.sh [VENV]   (default: .venv-glance in the repo root,
#        or $IMAGEPIPE_GLANCE_VENV; $IMAGEPIPE_GLANCE_PYTHON picks the python)
#
# Idempotent and quick: when VENV already holds what this script installs (a
# stamp file records a hash of the requirements) it returns at once. Prints
# the venv's path on success. Every package is pinned (the set a working
# install resolved to), so CI installs the same glance every time.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${1:-${IMAGEPIPE_GLANCE_VENV:-.venv-glance}}
python=${IMAGEPIPE_GLANCE_PYTHON:-python3}
# glance 33 (2026.2) has no standalone server any more: it runs under gunicorn.
requirements="glance==33.0.0 gunicorn==27.0.1"
constraints=$(cat <<'PINS'
alembic==1.20.1
amqp==5.4.2
attrs==26.1.0
automaton==3.5.0
autopage==0.6.0
bcrypt==5.0.0
cachetools==8.0.2
castellan==5.8.0
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
cliff==4.17.0
cmd2==4.3.1
cotyledon==2.2.0
cryptography==50.0.2
cursive==0.3.1
debtcollector==3.1.0
decorator==5.3.1
defusedxml==0.7.1
dnspython==2.9.2
dogpile.cache==1.5.0
eventlet==0.41.3
fasteners==0.20
futurist==3.5.0
glance==33.0.0
glance_store==5.7.0
greenlet==3.5.6
gunicorn==27.0.1
httplib2==0.32.1
idna==3.20
importlib_metadata==10.2.0
iso8601==2.1.0
Jinja2==3.1.6
jmespath==1.1.0
jsonpatch==1.48
jsonpointer==3.12
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
keystoneauth1==5.18.1
keystonemiddleware==13.0.1
kombu==5.7.0
lazy-importer==0.1.0
Mako==1.4.3
markdown-it-py==4.3.0
MarkupSafe==3.0.4
mdurl==0.1.2
msgpack==1.2.4
netaddr==1.3.0
networkx==3.6.1
openstacksdk==4.22.0
os-service-types==1.9.0
oslo.cache==4.3.0
oslo.concurrency==7.6.1
oslo.config==10.7.0
oslo.context==6.5.0
oslo.db==18.1.1
oslo.i18n==6.9.0
oslo.limit==2.12.0
oslo.log==8.3.2
oslo.messaging==18.3.1
oslo.metrics==0.17.0
oslo.middleware==8.2.0
oslo.policy==6.0.1
oslo.reports==3.9.0
oslo.serialization==5.11.0
oslo.service==4.8.0
oslo.upgradecheck==2.8.0
oslo.utils==10.2.0
osprofiler==4.4.0
packaging==26.4
Paste==3.10.1
PasteDeploy==3.1.0
pbr==7.1.3
platformdirs==4.14.8
prettytable==3.18.0
prometheus_client==0.26.0
prompt_toolkit==3.0.53
psutil==7.2.2
pycadf==4.1.0
pycparser==3.12
pydot==4.0.1
Pygments==2.21.0
PyJWT==2.15.1
pyparsing==3.3.3
pyperclip==1.11.0
python-barbicanclient==7.6.0
python-dateutil==4.0.0
python-keystoneclient==6.0.0
PyYAML==6.0.4
referencing==0.37.0
repoze-lru==0.8
requests==2.34.2
retrying==1.4.2
rfc3986==2.0.0
rich==15.0.0
rich-argparse==1.8.0
Routes==2.5.1
rpds-py==2026.9.1
setproctitle==1.3.8
simplegeneric==0.8.1
six==1.17.0
SQLAlchemy==2.1.9
statsd==4.0.1
stevedore==5.10.0
taskflow==6.5.0
tenacity==9.2.1
testresources==2.1.2
testscenarios==0.7.0
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
vine==5.1.0
wcwidth==0.9.4
WebOb==1.8.11
wrapt==2.5.2
WSME==0.13.0
yappi==1.7.6
zipp==4.1.2
PINS
)
want=$(printf '%s\n%s\n' "$requirements" "$constraints" | sha256sum | cut -d' ' -f1)
stamp=$venv/.imagepipe-glance

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && \
   [ -x "$venv/bin/gunicorn" ] && [ -x "$venv/bin/glance-manage" ]; then
    echo "$venv"
    exit 0
fi

rm -f "$stamp"
if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
pins_file=$(mktemp)
trap 'rm -f "$pins_file"' EXIT
printf '%s\n' "$constraints" > "$pins_file"
# shellcheck disable=SC2086  # $requirements is a list of specifiers
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$pins_file" $requirements >&2
test -f "$venv/etc/glance/glance-api-paste.ini" || {
    echo "glance-venv: $venv/etc/glance/glance-api-paste.ini is missing" >&2
    exit 1
}
echo "$want" > "$stamp"
echo "$venv"
