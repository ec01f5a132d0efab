"""A qcow2 overlay on a cached base (Nova's ``create_cow_image``)."""

import os

from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import resize
from imagepipe.tasks import safefs

CLUSTER_NOTES = {
    'inherit': "cluster_size is the base's own, when qemu-img reports one "
               '(a qcow2 base, Grizzly+)',
    '2M': 'cluster_size=2M as Essex 2012.1 and 2012.1.1 forced it',
}


def tmp_name(disk):
    return disk + '.tmp'


def options(backing, fmt, cluster_size):
    """The ``-o`` value; a comma in the backing path is doubled (escaped)."""
    opts = [f"backing_file={backing.replace(',', ',,')}",
            f'backing_fmt={fmt}']
    if cluster_size:
        opts.append(f'cluster_size={cluster_size}')
    return ','.join(opts)


def create_argv(backing, fmt, cluster_size, target, size):
    argv = ['qemu-img', 'create', '-f', 'qcow2',
            '-o', options(backing, fmt, cluster_size), target]
    return argv if size is None else argv + [str(size)]


def _cluster_size(choice, info):
    return info.cluster_size if choice == 'inherit' else choice


def _create(base_path, disk, base_format, cluster_size, size):
    backing = os.path.abspath(base_path)
    mode = safefs.source_mode(backing)
    fmt, info = resize.format_and_info(backing, base_format)
    tmp = tmp_name(disk)
    cluster = _cluster_size(cluster_size, info)
    # qemu-img writes into the file made here, keeping its mode
    os.close(safefs.create(tmp, mode))
    tools.run(*create_argv(backing, fmt, cluster, tmp, size))
    safefs.publish(tmp, disk)
    # qemu-img makes exactly this size (a qcow2 one rounded up to 512 bytes),
    # so it is not read back with one more qemu-img info.
    virtual = info.virtual_size if size is None else -(-size // 512) * 512
    return {'path': disk, 'backing_file': backing, 'backing_format': fmt,
            'cluster_size': cluster, 'virtual_size': virtual}


class CreateOverlay(contract.ImageTask):
    """``qemu-img create -f qcow2`` backed by ``base``, at ``disk``.

    ``cluster_size``: None (Nova's default), '2M' (early Essex) or 'inherit'
    (the base's cluster size when it has one, Grizzly+). ``size`` None gives
    the overlay the base's virtual size, as every release before modern
    Nova did.
    """

    source = 'libvirt.utils.create_cow_image'
    notes = ('the backing path is made absolute: qemu-img resolves a '
             "relative one against the overlay's directory",)

    def work(self, base, disk, base_format, cluster_size, size):
        return _create(base, disk, base_format, cluster_size, size)

    def undo(self, disk, **_):
        safefs.remove(tmp_name(disk))
        safefs.remove(disk)

    def preview(self, base, disk, base_format, cluster_size, size, done=None,
                **_):
        shown_cluster = ('<cluster size of the base>'
                         if cluster_size == 'inherit' else cluster_size)
        if done:  # what it ran
            base_format = done['backing_format']
            shown_cluster = done.get('cluster_size', shown_cluster)
        notes = ([CLUSTER_NOTES[cluster_size]]
                 if cluster_size in CLUSTER_NOTES else [])
        if size is None:
            notes.append("no size: the overlay has the base's virtual size")
        return {'command': create_argv(os.path.abspath(base),
                                       resize.shown_format(base_format),
                                       shown_cluster, tmp_name(disk), size),
                'creates': [disk], 'notes': notes}
