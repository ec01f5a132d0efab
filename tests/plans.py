"""Plans drawn for the golden tests, in the article's $-notation."""

import hashlib

from imagepipe import flows
from imagepipe.cmd import plan as plan_cmd

IMAGE = 'http://glance/cirros.qcow2'
HEX = hashlib.sha1(IMAGE.encode()).hexdigest()
INSTANCE = 'vm1'

# The intake every release with images fetched to the cache begins with.
# wget http://glance/$image -o base_/$hex.part
FETCH = ('root-fetch', [f'GET {IMAGE} -o $B/$hex.part'])
# images.fetch_to_raw: qemu-img info (and imagepipe's check) on the .part
INSPECT = ('root-inspect', [
    'qemu-img info --force-share --output=json $B/$hex.part',
    'qemu-img check --output=json -f qcow2 $B/$hex.part'])
# qemu-img convert -O raw $hex.part $hex.converted (-f pinned by imagepipe)
CONVERT = ('root-convert', [
    'qemu-img convert -t none -O raw -f <format of root-inspect> -W -p '
    '$B/$hex.part $B/$hex.converted'])
# mv $hex.converted $hex (or mv $hex.part $hex): an in-process rename
PUBLISH = ('root-publish', [])
# imagepipe's last step: the instance disks exist, whole (in-process)
VERIFY = ('verify', [])


class Plan:
    """A built flow, its kwargs and its steps rendered in $-notation."""

    def __init__(self, flow, kwargs, instances, cache='_base'):
        self.flow = flow
        self.kwargs = kwargs
        self.instances = instances
        self.cache = cache
        self.steps = plan_cmd.describe(flow)
        self.atoms = {atom.name: atom for atom in flow}
        self.by_name = {s['name']: s for s in self.steps}

    def render(self, text):
        i = self.instances
        for path, symbol in ((f'{i}/{self.cache}/{HEX}', '$B/$hex'),
                             (f'{i}/{self.cache}', '$B'),
                             (f'{i}/{INSTANCE}', '$D'),
                             (i, '$I'), (HEX, '$hex')):
            text = text.replace(path, symbol)
        return text

    def commands(self):
        """[(step, [command, ...]), ...] in execution order."""
        rows = []
        for step in self.steps:
            command = step['command'] or []
            if command and not isinstance(command[0], list):
                command = [command]
            rows.append((step['name'], [self.render(' '.join(map(str, c)))
                                        for c in command]))
        return rows

    def names(self):
        return [s['name'] for s in self.steps]

    def lock(self, name):
        lock = self.by_name[name]['lock']
        return lock and self.render(lock)

    def notes(self, name):
        return self.by_name[name]['notes']

    def all_notes(self):
        return [n for s in self.steps for n in s['notes']]

    def inject(self, name):
        return self.atoms[name].inject

    @property
    def settings(self):
        return self.kwargs['settings']

    def warnings(self):
        return flows.warnings(self.kwargs['release'], self.settings)
