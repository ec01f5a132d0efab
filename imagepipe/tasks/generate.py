"""Generated disks: ephemeral and swap (Nova's ``_create_ephemeral``/swap).

These are not fetched: Nova made an empty raw file of the requested size
and formatted it, either in the image cache (then overlaid, or reused by the
next instance of the same size) or directly at the instance's disk.
"""

import os

from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import safefs


def tmp_name(target):
    return target + '.tmp'


def ephemeral_argvs(target, size_gb, fs_label, mkfs):
    """``mkfs`` is the argv head: a tool name or a list like mkfs -t ext3."""
    head = [mkfs] if isinstance(mkfs, str) else list(mkfs)
    return [['qemu-img', 'create', '-f', 'raw', target, f'{size_gb}G'],
            head + ['-F', '-L', fs_label, target]]


def mkfs_argv(fs, target, label):
    """Modern Nova's mkfs rule (nova/privsep/fs.py unprivileged_mkfs)."""
    argv = ['mkfs', '-t', fs]
    if fs in ('ext3', 'ext4', 'ntfs'):
        argv.append('-F')
    if label:
        argv += ['-n' if fs in ('msdos', 'vfat') else '-L', label]
    return argv + [target]


def ephemeral_fs_argvs(target, size_gb, fs_label, fs):
    return [['qemu-img', 'create', '-f', 'raw', target, f'{size_gb}G'],
            mkfs_argv(fs, target, fs_label)]


def swap_argvs(target, size_mb):
    return [['qemu-img', 'create', '-f', 'raw', target, f'{size_mb}M'],
            ['mkswap', target]]


def _generate(target, reuse, argvs):
    """Run ``argvs`` (built for the tmp name), then publish the target."""
    created = not (reuse and safefs.existing_file(target, 'reuse it'))
    if created:
        # the tools write into the file made here, keeping Nova's mode
        os.close(safefs.create(tmp_name(target), safefs.NOVA_MODE))
        for argv in argvs:
            tools.run(*argv)
        safefs.publish(tmp_name(target), target)
    return {'path': target, 'created': created,
            'size': os.path.getsize(target)}


def _discard(target, reuse):
    """Revert: a cache target (``reuse``) stays, an instance disk goes."""
    safefs.remove(tmp_name(target))
    if not reuse:
        safefs.remove(target)


def _plan(target, reuse, argvs):
    note = (f'skipped if {target} already exists; kept if the flow fails'
            if reuse else f'{target} is removed if the flow fails')
    return {'command': argvs, 'creates': [target], 'notes': [note]}


class CreateEphemeral(contract.ImageTask):
    """An empty raw disk of ``size_gb`` GiB with a labelled filesystem."""

    source = 'libvirt.driver.LibvirtDriver._create_ephemeral'

    def work(self, target, size_gb, fs_label, mkfs, reuse):
        return _generate(target, reuse, ephemeral_argvs(
            tmp_name(target), size_gb, fs_label, mkfs))

    def undo(self, target, reuse, **_):
        _discard(target, reuse)

    def preview(self, target, size_gb, fs_label, mkfs, reuse, **_):
        return _plan(target, reuse, ephemeral_argvs(
            tmp_name(target), size_gb, fs_label, mkfs))


class CreateEphemeralFs(contract.ImageTask):
    """An empty raw disk of ``size_gb`` GiB with filesystem ``fs``.

    Modern Nova picks the filesystem by the image's os_type (vfat when it is
    unknown, as for imagepipe's requests) and formats with ``mkfs -t``.
    """

    source = 'libvirt.driver.LibvirtDriver._create_ephemeral'

    def work(self, target, size_gb, fs_label, fs, reuse):
        return _generate(target, reuse, ephemeral_fs_argvs(
            tmp_name(target), size_gb, fs_label, fs))

    def undo(self, target, reuse, **_):
        _discard(target, reuse)

    def preview(self, target, size_gb, fs_label, fs, reuse, **_):
        return _plan(target, reuse, ephemeral_fs_argvs(
            tmp_name(target), size_gb, fs_label, fs))


class CreateSwap(contract.ImageTask):
    """An empty raw disk of ``size_mb`` MiB formatted as swap."""

    source = 'libvirt.driver.LibvirtDriver._create_swap'

    def work(self, target, size_mb, reuse):
        return _generate(target, reuse,
                         swap_argvs(tmp_name(target), size_mb))

    def undo(self, target, reuse, **_):
        _discard(target, reuse)

    def preview(self, target, size_mb, reuse, **_):
        return _plan(target, reuse, swap_argvs(tmp_name(target), size_mb))
