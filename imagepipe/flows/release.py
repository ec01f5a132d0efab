"""What one Nova release did differently, as data.

Each release module declares a :class:`Release` whose :class:`Traits` record
the choices that differ between releases; :mod:`imagepipe.flows.blocks`
reads them to build the flow. The stevedore entry point of a release names
its ``RELEASE`` object.
"""

import dataclasses

from imagepipe.flows import blocks


@dataclasses.dataclass(frozen=True)
class Traits:
    #: base directory name read from the option (Folsom hard-coded _base)
    base_dir_option: bool = True
    #: copy/overlay lock named after the base's full path (``$B/$hex``)
    #: rather than ``$hex`` like the fetch lock
    copy_lock_is_path: bool = True
    #: the LVM copy lock on its own (Juno regressed to the full path)
    lvm_lock_is_path: bool = True
    #: virtual size checked against the flavor before conversion
    max_size_check: bool = False
    #: qcow2 instances backed by a resized copy ``<hex>_<GiB>`` in _base
    resized_base: bool = False
    #: qcow2 overlay cluster size: None, '2M', or 'inherit' from the base
    overlay_cluster_size: str | None = None
    #: after creating an overlay, grow it to the flavor size (Grizzly+)
    extend_overlay: bool = False
    #: filesystem resize variant for files: blind, checked, strict
    fs_resize: str = 'blind'
    #: fs resize of qcow2 overlays: 'blind' (tried, fails), 'nbd-option'
    #: (only through nbd when resize_fs_using_block_device), or None
    overlay_fs_resize: str | None = 'blind'
    #: preallocate_images exists (Grizzly+)
    preallocation: bool = False
    #: backends offered: Essex had no LVM
    backends: tuple = ('raw', 'qcow2', 'lvm')
    #: how the base reaches an LV: 'dd' (Folsom) or 'convert'
    lvm_write: str = 'convert'
    #: vgs columns queried before lvcreate: 'free' (Folsom) or 'size,free'
    lvm_vgs: str = 'size,free'
    #: volume_clear is an option (Icehouse+); before, LVs were zeroed
    volume_clear_option: bool = False
    #: disk.info records the format of each disk: None, 'append', 'atomic'
    disk_info: str | None = None


@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    nova_tag: str
    date: str
    traits: Traits
    #: options that change this release's flow
    options: tuple = ()

    def build(self, settings, request):
        return blocks.build(self, settings, request)
