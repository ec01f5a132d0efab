"""What one Nova release did differently, as data.

Each release module declares a :class:`Release` whose :class:`Traits` record
the choices that differ between releases; :mod:`imagepipe.flows.build`
reads them to build the flow. The stevedore entry point of a release names
its ``RELEASE`` object. Each trait says which release changed it; the
release modules cite the Nova code (file@tag) behind each change.

The first release declares its whole Traits; every later one is
``dataclasses.replace`` of the traits of the release before it, naming only
what changed, and links that release as ``previous``: a release module is
its changelog, and :meth:`Release.changes` reads it back (the documentation's
"Changes since" sections).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Traits:
    # -- locks --
    #: Nova's locks were lock files (Folsom+); Essex had in-process
    #: semaphores only
    file_locks: bool = True
    #: the fetch lock re-checks that the base is missing (not Icehouse,
    #: LP#1298420)
    fetch_rechecks_in_lock: bool = True
    #: copy/overlay lock named after the base's full path (``$B/$hex``)
    #: rather than ``$hex`` like the fetch lock
    copy_lock_is_path: bool = True
    #: the LVM copy lock on its own (Juno regressed to the full path)
    lvm_lock_is_path: bool = True

    # -- cache and fetch --
    #: base directory name read from the option (Folsom hard-coded _base)
    base_dir_option: bool = True
    #: virtual size checked against the flavor before conversion
    max_size_check: bool = False
    #: a failed copy or resize removed the half-made file (not Essex)
    cleanup_on_error: bool = True

    # -- root disk, files --
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
    #: disk.info records the format of each disk: None, 'append', 'atomic'
    disk_info: str | None = None
    #: (backend, bug): backends whose disk Nova declared raw to libvirt
    #: whatever it held, so with force_raw_images=False a non-raw image
    #: did not boot
    declared_raw: tuple = ()

    # -- ephemeral and swap --
    #: cache name of an ephemeral base, formatted with ``gb``
    ephemeral_name: str = 'ephemeral_{gb}_default'
    #: the mkfs command head for ext3 (a tool name or an argv list)
    ephemeral_mkfs: str | tuple | None = 'mkfs.ext3'
    #: Folsom's Qcow2 backend also made ``<name>_<GiB>`` copies of
    #: generated bases (not reproduced)
    resized_generated_base: bool = False

    # -- LVM --
    #: backends offered: Essex had no LVM
    backends: tuple = ('raw', 'qcow2', 'lvm')
    #: how the base reaches an LV: 'dd' (Folsom) or 'convert'
    lvm_write: str = 'convert'
    #: vgs columns queried before lvcreate: 'free' (Folsom) or 'size,free'
    lvm_vgs: str = 'size,free'
    #: fs resize of a grown LV: 'blind' (exit codes ignored, Folsom ..
    #: Havana) or 'device' (Icehouse+ exit-code rules)
    lvm_fs_resize: str = 'device'
    #: e2fsck/resize2fs on the LV ran as root (Grizzly+, LP#1101137)
    lvm_fs_as_root: bool = True
    #: volume_clear is an option (Icehouse+); before, LVs were zeroed
    volume_clear_option: bool = False

    # -- modern Nova (nova/virt/libvirt/imagebackend.py@33.0.2) --
    #: Nova itself ran the format inspector on downloads (29.1.0+), so the
    #: inspection is no deviation and [workarounds]
    #: disable_deep_image_inspection switches it off
    nova_inspects: bool = False
    #: Qcow2 runs the inspector on the cached base before each overlay,
    #: unlocked and again inside the copy lock (29.1.0+)
    reinspect_base: bool = False
    #: the flavor size is checked on the cached base after fetch and
    #: conversion (FlavorDiskSmallerThanImage, Newton+; with
    #: max_size_check False)
    size_check_after_fetch: bool = False
    #: the qcow2 overlay is created at the flavor size (Yoga 25.0.0+)
    overlay_at_flavor_size: bool = False
    #: fetch_to_raw's qemu-img convert names the input format (Mitaka+)
    convert_pinned: bool = False
    #: qcow2 overlays name their backing format (backing_fmt)
    overlay_backing_fmt: bool = False
    #: qemu-img resize names the driver's format (33.0.0+, CVE-2026-24708),
    #: which for a new Flat copy is still raw whatever the copy holds
    resize_format_pinned: bool = False
    #: only preallocate_images=space preallocates (Kilo+); before, any value
    #: but none did
    preallocate_space_only: bool = False
    #: the fallocate probe used -n (Grizzly .. Juno, LP#1543181)
    fallocate_probe_keep_size: bool = True
    #: the seed article's tables describe this release (plan notes compare)
    article_notes: bool = True
    #: ephemeral filesystem made by modern Nova's ``mkfs -t <fs>`` rule,
    #: then ``ephemeral_mkfs`` is None (None: ``ephemeral_mkfs`` with ext3)
    ephemeral_fs: str | None = None


@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    nova_tag: str
    date: str
    traits: Traits
    #: options that change this release's flow
    options: tuple = ()
    #: the release whose options this one reads (None: its own name); a
    #: release from another package can read, say, Juno's
    conf_release: str | None = None
    #: the release whose traits this one changes (None: the first one, or
    #: a release declared whole)
    previous: 'Release | None' = dataclasses.field(default=None, repr=False)

    def changes(self):
        """(trait, before, after) of each trait that differs from the
        previous release, in the order Traits declares them."""
        if self.previous is None:
            return []
        before = self.previous.traits
        return [(f.name, getattr(before, f.name), getattr(self.traits, f.name))
                for f in dataclasses.fields(Traits)
                if getattr(before, f.name) != getattr(self.traits, f.name)]

    def build(self, settings, request):
        # imported here: listing releases needs neither taskflow nor tasks
        from imagepipe.flows import build
        return build.flow(self, settings, request)

    def warnings(self, settings):
        """What the configuration makes this release do wrong, one line each.

        Only ``settings`` is read (no request): the plan shows these for any
        image.
        """
        from imagepipe.flows import build
        return build.warnings(self, settings)
