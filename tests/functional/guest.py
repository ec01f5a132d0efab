"""The tiny guest the boot tests start, built from Debian packages.

* kernel: the installed Debian cloud kernel (``linux-image-cloud-amd64``,
  any ``/boot/vmlinuz-*`` with its modules will do). ext4, devtmpfs, the 8250
  console and ACPI are built in; virtio is not, hence:
* initramfs (cpio newc, gzip): a static busybox and the six virtio modules;
  its ``/init`` loads them, mounts ``/dev/vda`` as ext4 and ``switch_root``\\ s
  into it, or prints ``IMAGEPIPE-ROOT-MOUNT-FAIL`` and powers off.
* root filesystem: a 16 MiB ext4 directly on the disk (no partition table,
  what Nova could grow) with busybox and an ``/init`` that prints what the
  guest sees (sectors of vda, ``df -k /``), writes a file, remounts ``/``
  read-only and powers off.

Since the markers come from the disk's own ``/init``, a guest that prints
them has read and run the filesystem inside the disk under test.
"""

import dataclasses
import glob
import gzip
import os
import re
import shutil
import subprocess

BUSYBOX = '/bin/busybox'
#: insmod order (each needs the ones before it)
MODULES = ('virtio_ring', 'virtio', 'virtio_pci_legacy_dev',
           'virtio_pci_modern_dev', 'virtio_pci', 'virtio_blk')
ROOTFS_MB = 16
ROOT_APPLETS = ('sh', 'mount', 'umount', 'cat', 'df', 'sed', 'sync',
                'poweroff')

MARK_INITRAMFS = 'IMAGEPIPE-INITRAMFS'
MARK_MOUNT_FAIL = 'IMAGEPIPE-ROOT-MOUNT-FAIL'
MARK_BOOT_OK = 'IMAGEPIPE-BOOT-OK'
MARK_WROTE = 'IMAGEPIPE-WROTE'
MARK_DONE = 'IMAGEPIPE-POWEROFF'

INITRAMFS_INIT = f'''#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev
echo {MARK_INITRAMFS}
for m in $(cat /modules); do
  insmod /lib/$m.ko || echo "IMAGEPIPE-INSMOD-FAIL $m"
done
i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
echo "IMAGEPIPE-INITRAMFS-VDA-SECTORS $(cat /sys/block/vda/size)"
mkdir -p /r
mount -t ext4 /dev/vda /r || {{ echo {MARK_MOUNT_FAIL}; poweroff -f; }}
umount /proc /sys /dev
exec switch_root /r /init
'''

ROOT_INIT = f'''#!/bin/sh
mount -t proc p /proc; mount -t sysfs s /sys
echo {MARK_BOOT_OK}
echo "IMAGEPIPE-VDA-SECTORS $(cat /sys/block/vda/size)"
df -k / | sed -n '2s/^/IMAGEPIPE-DF /p'
cat /proc/sys/kernel/random/boot_id > /booted.txt && sync && echo {MARK_WROTE}
mount -o remount,ro /; sync
echo {MARK_DONE}
poweroff -f
'''


class Unavailable(Exception):
    """The guest cannot be built on this machine (with the reason)."""


@dataclasses.dataclass(frozen=True)
class Guest:
    kernel: str
    initrd: str
    raw: str          # the ext4 root as a raw disk image
    qcow2: str        # the same, converted to qcow2
    kernel_version: str


def _run(*argv):
    done = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, 'LC_ALL': 'C'})
    if done.returncode != 0:
        raise Unavailable(f'{" ".join(argv)} failed: {done.stderr.strip()}')
    return done.stdout


def _is_static(path):
    """True when the ELF file has no program interpreter (PT_INTERP)."""
    with open(path, 'rb') as f:
        head = f.read(64)
        if head[:4] != b'\x7fELF' or head[4] != 2:
            return False
        phoff = int.from_bytes(head[32:40], 'little')
        phentsize = int.from_bytes(head[54:56], 'little')
        phnum = int.from_bytes(head[56:58], 'little')
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(int.from_bytes(table[i:i + 4], 'little') != 3
               for i in range(0, len(table), phentsize))


def find_busybox():
    if not os.path.exists(BUSYBOX) or not _is_static(BUSYBOX):
        raise Unavailable(f'no static {BUSYBOX}: install busybox-static '
                          '(tools/bootstrap.sh)')
    return BUSYBOX


def _module_file(moddir, name):
    found = glob.glob(os.path.join(moddir, 'kernel', '**', name + '.ko'),
                      recursive=True)
    return found[0] if found else None


def _builtin(moddir):
    try:
        with open(os.path.join(moddir, 'modules.builtin')) as f:
            return {os.path.basename(line.strip())[:-3] for line in f}
    except FileNotFoundError:
        return set()


def find_kernel():
    """(vmlinuz, version, {module: .ko path}) of an installed kernel.

    The cloud kernel is preferred; a kernel qualifies when every virtio
    module it needs is an uncompressed ``.ko`` (busybox insmod) or built in.
    """
    kernels = sorted(glob.glob('/boot/vmlinuz-*'),
                     key=lambda p: ('-cloud-' not in p, p))
    reasons = []
    for vmlinuz in kernels:
        version = os.path.basename(vmlinuz)[len('vmlinuz-'):]
        moddir = os.path.join('/lib/modules', version)
        builtin = _builtin(moddir)
        modules, missing = {}, []
        for name in MODULES:
            path = _module_file(moddir, name)
            if path:
                modules[name] = path
            elif name not in builtin:
                missing.append(name)
        if not missing:
            return vmlinuz, version, modules
        reasons.append(f'{version} lacks {", ".join(missing)}')
    raise Unavailable('no usable guest kernel in /boot (install '
                      'linux-image-cloud-amd64, tools/bootstrap.sh)'
                      + (f': {"; ".join(reasons)}' if reasons else ''))


def _write(path, text, mode=0o644):
    with open(path, 'w') as f:
        f.write(text)
    os.chmod(path, mode)


def _cpio_newc(root, out):
    """A gzipped newc archive of the tree ``root`` (busybox's own cpio)."""
    names = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            names.append(os.path.relpath(os.path.join(top, name), root))
    listing = ''.join(f'./{n}\n' for n in names).encode()
    done = subprocess.run([BUSYBOX, 'cpio', '-o', '-H', 'newc'], cwd=root,
                          input=listing, capture_output=True)
    if done.returncode != 0:
        raise Unavailable(f'busybox cpio failed: {done.stderr!r}')
    with gzip.open(out, 'wb', compresslevel=6) as f:
        f.write(done.stdout)


def build(workdir):
    """Build the guest in ``workdir``; raise Unavailable when it can't."""
    for tool in ('mkfs.ext4', 'qemu-img'):
        if not (shutil.which(tool) or os.path.exists(f'/sbin/{tool}')
                or os.path.exists(f'/usr/sbin/{tool}')):
            raise Unavailable(f'{tool} is not installed')
    busybox = find_busybox()
    vmlinuz, version, modules = find_kernel()
    os.makedirs(workdir, exist_ok=True)

    ird = os.path.join(workdir, 'initramfs')
    for d in ('bin', 'lib', 'proc', 'sys', 'dev'):
        os.makedirs(os.path.join(ird, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(ird, 'bin', 'busybox'))
    for name, path in modules.items():
        shutil.copy(path, os.path.join(ird, 'lib', name + '.ko'))
    _write(os.path.join(ird, 'modules'),
           ' '.join(m for m in MODULES if m in modules) + '\n')
    _write(os.path.join(ird, 'init'), INITRAMFS_INIT, 0o755)
    initrd = os.path.join(workdir, 'initrd.gz')
    _cpio_newc(ird, initrd)

    root = os.path.join(workdir, 'rootfs')
    for d in ('bin', 'proc', 'sys', 'dev'):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(busybox, os.path.join(root, 'bin', 'busybox'))
    for applet in ROOT_APPLETS:
        link = os.path.join(root, 'bin', applet)
        if not os.path.lexists(link):
            os.symlink('busybox', link)
    _write(os.path.join(root, 'init'), ROOT_INIT, 0o755)
    raw = os.path.join(workdir, 'guest.raw')
    _run('mkfs.ext4', '-q', '-F', '-d', root, raw, f'{ROOTFS_MB}M')
    qcow2 = os.path.join(workdir, 'guest.qcow2')
    _run('qemu-img', 'convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2)

    kernel = os.path.join(workdir, 'vmlinuz')
    shutil.copy(vmlinuz, kernel)
    return Guest(kernel=kernel, initrd=initrd, raw=raw, qcow2=qcow2,
                 kernel_version=version)


_ESCAPES = re.compile(r'\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Za-z0-9]|[=>c])')


@dataclasses.dataclass
class Seen:
    """What the guest reported on its console."""

    booted: bool            # the disk's own /init ran
    mount_failed: bool      # the initramfs could not mount vda as ext4
    sectors: int | None     # /sys/block/vda/size (512-byte sectors)
    df_kib: int | None      # 1K-blocks of / (the ext4 on vda)
    wrote: bool             # /init wrote a file to its root and synced
    finished: bool          # /init reached its power-off
    initramfs_sectors: int | None
    log: str


def _number(text, pattern):
    found = re.search(pattern, text)
    return int(found.group(1)) if found else None


def read_console(text):
    """The markers in a serial log (SeaBIOS escapes and \\r removed)."""
    clean = _ESCAPES.sub('', text).replace('\r', '')
    return Seen(
        booted=MARK_BOOT_OK in clean,
        mount_failed=MARK_MOUNT_FAIL in clean,
        sectors=_number(clean, r'IMAGEPIPE-VDA-SECTORS (\d+)'),
        df_kib=_number(clean, r'IMAGEPIPE-DF \S+ +(\d+)'),
        wrote=MARK_WROTE in clean,
        finished=MARK_DONE in clean,
        initramfs_sectors=_number(
            clean, r'IMAGEPIPE-INITRAMFS-VDA-SECTORS (\d+)'),
        log=clean)
