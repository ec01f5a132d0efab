"""Boot the instance disks imagepipe makes, as each release's Nova left them.

For each case the ``imagepipe`` command runs a release's flow (a subprocess,
its own state_path) on the tiny guest's disk (tests/functional/guest.py) as
the image; the run's JSON (factory arguments and step results, read back
from the run database) gives the libvirt ``<disk>`` element
(:mod:`imagepipe.libvirt`), which is booted under libvirt (QEMU TCG, direct
kernel boot, serial console to a file). The guest reports what it sees;
that report, not QEMU's or libvirt's exit status, is the verdict:

* vda has the flavor's size;
* the filesystem was grown where that Nova grew it: Essex/Folsom resized
  bases and raw copies yes, Grizzly+ qcow2 overlays no (LP#1212734);
* the cached base files are unchanged after the guest wrote to its disk;
* Folsom with force_raw_images=False and use_cow_images=False on a qcow2
  image tells libvirt "raw" (LP#1163009): the guest cannot mount its root.

The machine needs tools/bootstrap.sh's packages; libvirtd and virtlogd are
started here (no systemd) and stopped by pid. A machine that cannot boot
the guests fails these tests; ``IMAGEPIPE_SKIP_BOOT=1`` skips them instead
(local runs only).
"""

from concurrent import futures
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from imagepipe import libvirt
from imagepipe.runner import persistence
from imagepipe.runner import store as run_store
from tests.functional import guest
from tests.functional import libvirtd

pytestmark = pytest.mark.slow

SKIP_ENV = 'IMAGEPIPE_SKIP_BOOT'
GiB = 1024 ** 3
ROOT_GB = 1
#: one boot takes 3-8 s under TCG; anything near this is a hung guest
BOOT_TIMEOUT = 90
RUN_TIMEOUT = 120
#: 1K-blocks of / once grown to 1 GiB (1 KiB blocks, less the metadata)
GROWN_MIN_KIB = 900 * 1024
NOT_GROWN_MAX_KIB = guest.ROOTFS_MB * 1024


def unavailable(reason):
    if os.environ.get(SKIP_ENV) == '1':
        pytest.skip(f'boot tests skipped ({SKIP_ENV}=1): {reason}')
    pytest.fail(f'the boot tests cannot run on this machine: {reason} '
                f'(set {SKIP_ENV}=1 to skip them in a local run)',
                pytrace=False)


@pytest.fixture(scope='session')
def tiny_guest(tmp_path_factory):
    if os.environ.get(SKIP_ENV) == '1':
        pytest.skip(f'boot tests skipped ({SKIP_ENV}=1)')
    try:
        return guest.build(str(tmp_path_factory.mktemp('guest')))
    except guest.Unavailable as e:
        reason = str(e)
    unavailable(reason)


@pytest.fixture(scope='session')
def daemons(tiny_guest):
    lv = libvirtd.Libvirt()
    reason = None
    try:
        lv.start()
    except (libvirtd.Unavailable, subprocess.SubprocessError, OSError) as e:
        reason = f'{e} {getattr(e, "stderr", None) or ""}'.strip()
    if reason:
        lv.stop()
        unavailable(reason)
    yield lv
    for problem in lv.stop():
        print(f'boot tests: {problem}', file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    release: str
    image: str                  # 'raw' or 'qcow2': the guest disk given
    options: dict               # {group: {name: value}} for the conf file
    driver: str                 # <driver type> the release wrote
    grown: bool | None = None   # filesystem grown (None: does not boot)
    preallocated: bool = False

    @property
    def boots(self):
        return self.grown is not None


def folsom(force_raw, use_cow, **kw):
    return Case(
        f'folsom-force_raw={force_raw}-use_cow={use_cow}', 'folsom', 'qcow2',
        {'DEFAULT': {'force_raw_images': force_raw,
                     'use_cow_images': use_cow}}, **kw)


CASES = [
    # raw base, resized copy <hex>_1 grown in _base, qcow2 overlay on it
    folsom(True, True, driver='qcow2', grown=True),
    # qcow2 base; <hex>_1 is a qcow2 copy: e2fsck/resize2fs fail on it
    folsom(False, True, driver='qcow2', grown=False),
    # raw copy in the instance dir, resized and grown in place
    folsom(True, False, driver='raw', grown=True),
    # qcow2 copy announced as raw: LP#1163009, does not boot
    folsom(False, False, driver='raw'),
    # overlay on the raw base, resized; its filesystem is not grown
    Case('grizzly-defaults', 'grizzly', 'raw', {}, driver='qcow2',
         grown=False),
    Case('grizzly-preallocate=space', 'grizzly', 'raw',
         {'DEFAULT': {'preallocate_images': 'space'}}, driver='qcow2',
         grown=False, preallocated=True),
    # 2013.1.1+: Raw probes the copy (qcow2): it boots, not grown
    Case('grizzly-raw-force_raw=False', 'grizzly', 'qcow2',
         {'DEFAULT': {'libvirt_images_type': 'raw',
                      'force_raw_images': False}}, driver='qcow2',
         grown=False),
    Case('icehouse-images_type=raw', 'icehouse', 'qcow2',
         {'libvirt': {'images_type': 'raw'}}, driver='raw', grown=True),
    Case('juno-defaults', 'juno', 'qcow2', {}, driver='qcow2', grown=False),
    # today's Nova: the overlay is born at the flavor size, nothing is grown
    Case('gazpacho-defaults', 'gazpacho', 'qcow2', {}, driver='qcow2',
         grown=False),
    Case('gazpacho-images_type=flat', 'gazpacho', 'qcow2',
         {'libvirt': {'images_type': 'flat'}}, driver='raw', grown=True),
]


def imagepipe_command():
    near = os.path.join(os.path.dirname(sys.executable), 'imagepipe')
    found = near if os.path.exists(near) else shutil.which('imagepipe')
    assert found, 'the imagepipe command is not installed'
    return found


def write_conf(path, state_path, options):
    groups = {'DEFAULT': {'state_path': state_path}}
    for group, values in options.items():
        groups.setdefault(group, {}).update(values)
    with open(path, 'w') as f:
        for group, values in groups.items():
            f.write(f'[{group}]\n')
            for name, value in values.items():
                f.write(f'{name} = {value}\n')
            f.write('\n')


def run_imagepipe(case, image, workdir):
    """Run the case's flow with the CLI; (run kwargs, step results)."""
    state = os.path.join(workdir, 'state')
    conf = os.path.join(workdir, 'nova.conf')
    write_conf(conf, state, case.options)
    argv = [imagepipe_command(), '--config-file', conf,
            '--release', case.release, 'run', '--image', image,
            '--instance', 'vm1', '--root-gb', str(ROOT_GB),
            '--format', 'json']
    env = {**os.environ,
           'PATH': os.environ.get('PATH', '') + ':/usr/sbin:/sbin'}
    done = subprocess.run(argv, capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, (
        f'imagepipe run failed ({done.returncode}): {done.stderr}')
    out = json.loads(done.stdout)
    assert out['state'] == 'SUCCESS', out
    store = run_store.RunStore(persistence.open_backend(
        f'sqlite:///{state}/imagepipe.sqlite'))
    fd = store.find(out['run'])
    kwargs, results = libvirt.for_run(fd)
    assert results == libvirt.results_of(out['steps'])
    return kwargs, results


def sha1(path):
    h = hashlib.sha1()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def cached_files(kwargs):
    """{path: sha1} of every file in the image cache (_base)."""
    base_dir = os.path.join(kwargs['settings']['instances_path'], '_base')
    return {os.path.join(base_dir, n): sha1(os.path.join(base_dir, n))
            for n in sorted(os.listdir(base_dir))}


def boot(daemons, tiny_guest, kwargs, results, workdir, name,
         edit=lambda xml: xml):
    """Boot the run's disk in the minimal domain: (what the guest saw, s)."""
    console = os.path.join(workdir, f'{name}.console.log')
    domain = f'imagepipe-boot-{os.getpid()}-{name}'
    xml = edit(libvirt.domain_xml(kwargs, results, tiny_guest.kernel,
                                  tiny_guest.initrd, console, name=domain))
    log, seconds = daemons.boot(xml, domain, console, BOOT_TIMEOUT)
    return guest.read_console(log), seconds


def as_qcow2(xml):
    raw = '<driver name="qemu" type="raw" />'
    assert raw in xml
    return xml.replace(raw, '<driver name="qemu" type="qcow2" />')


def claimed_growth(results):
    """Whether imagepipe's own steps say a filesystem was grown."""
    return any(r.get('grown') for step, r in results.items()
               if step.startswith('root-resize-fs'))


@pytest.fixture(scope='session')
def imagepipe_runs(request, tiny_guest, tmp_path_factory):
    """{case id: future (run kwargs, results)} of the selected cases.

    The runs go one at a time in a thread, in test order, so that they
    overlap with the boots (QEMU TCG keeps one core busy).
    """
    wanted = [item.callspec.params['case'] for item in request.session.items
              if isinstance(getattr(item, 'callspec', None)
                            and item.callspec.params.get('case'), Case)]
    pool = futures.ThreadPoolExecutor(max_workers=1)
    made = {c.id: pool.submit(run_imagepipe, c, getattr(tiny_guest, c.image),
                              str(tmp_path_factory.mktemp('run')))
            for c in wanted}
    yield made
    pool.shutdown(cancel_futures=True)


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_boot(case, daemons, imagepipe_runs, tiny_guest, tmp_path):
    kwargs, results = imagepipe_runs[case.id].result()

    disk = libvirt.root_disk(kwargs, results)
    assert disk['type'] == 'file'
    assert disk['driver_type'] == case.driver, disk['why']
    source = disk['source']
    if case.preallocated:
        assert results['root-preallocate']['preallocated'], results
        assert os.stat(source).st_blocks * 512 >= ROOT_GB * GiB
    bases = cached_files(kwargs)
    disk_before = sha1(source)

    seen, seconds = boot(daemons, tiny_guest, kwargs, results,
                         str(tmp_path), 'boot')
    where = f'({seconds:.1f} s) console:\n{seen.log[-3000:]}'

    assert cached_files(kwargs) == bases, 'a cached base changed'
    if not case.boots:
        assert not seen.booted, where
        assert seen.mount_failed, where
        # libvirt handed the qcow2 file's bytes to the guest as a raw disk
        # (QEMU rounds a raw file's size up to whole sectors)
        sectors = -(-os.path.getsize(source) // 512)
        assert seen.initramfs_sectors == sectors, where
        # the same disk boots once libvirt is told it is qcow2
        seen, seconds = boot(daemons, tiny_guest, kwargs, results,
                             str(tmp_path), 'as-qcow2', edit=as_qcow2)
        assert seen.booted and seen.finished, seen.log[-3000:]
        assert cached_files(kwargs) == bases, 'a cached base changed'
        return
    assert seen.booted and seen.wrote and seen.finished, where
    assert seen.sectors * 512 == ROOT_GB * GiB, where
    if case.grown:
        assert seen.df_kib >= GROWN_MIN_KIB, where
    else:
        assert seen.df_kib <= NOT_GROWN_MAX_KIB, where
    assert claimed_growth(results) == case.grown, results
    assert sha1(source) != disk_before, 'the guest wrote nothing to vda'

