"""What every part of a release's flow is built with.

:class:`Build` holds one flow being built: the release's traits, the
settings snapshot, the request, and the paths and sizes that follow from
them. :class:`Step` is one task to make; steps taken under one of Nova's
locks form a section: the first task takes the lock, the last one releases
it (:mod:`imagepipe.tasks.locks`). The steps several parts share (growing a
disk and its filesystem, the flavor check, disk.info, preallocation) are
made here.

A step's notes come from its task; the flow adds only what the task cannot
know: where imagepipe departs from the release (:mod:`deviations`) and where
the article's tables simplify Nova's code (:mod:`article`).
"""

from imagepipe.flows import article
from imagepipe.flows import deviations
from imagepipe.flows import paths as flow_paths
from imagepipe.tasks import disk_ops
from imagepipe.tasks import diskinfo
from imagepipe.tasks import flavor
from imagepipe.tasks import preallocate
from imagepipe.tasks import resize

GiB = flow_paths.GiB
MiB = 1024 ** 2


class Step:
    """One task to build: class, name, inject, wire, extra notes."""

    def __init__(self, cls, name, inject, wire=None, notes=()):
        self.cls, self.name, self.inject = cls, name, inject
        self.wire, self.notes = wire, notes

    def task(self, lock=None):
        inject = dict(self.inject)
        if lock is not None:
            inject['lock'] = lock
        return self.cls(self.name, inject=inject, wire=self.wire,
                        notes=self.notes)

    def unlocked(self):
        """The task of a step that takes a ``lock`` but runs outside one."""
        return self.cls(self.name, inject={**self.inject, 'lock': None},
                        wire=self.wire, notes=self.notes)


class Build:
    """One flow being built: release traits, settings, request, and the
    paths and sizes that follow from them."""

    def __init__(self, release, settings, request):
        self.release = release
        self.traits = t = release.traits
        self.settings = settings
        self.request = request
        base_dir_name = (settings['image_cache_subdirectory_name']
                         if t.base_dir_option else '_base')
        self.paths = flow_paths.Paths(settings, request, base_dir_name)
        self.size = (request.get('root_gb') or 0) * GiB or None
        self.backend = settings['images_type_effective']
        #: format of the base once published; None: known only at run time
        self.base_format = 'raw' if settings['force_raw_images'] else None
        #: [workarounds] disable_deep_image_inspection is off (or unknown to
        #: the release: only a release whose Nova inspects reads it)
        self.deep = not settings.get('disable_deep_image_inspection')

    def lock(self, name, last):
        """A lock file whatever disable_process_locking says: every run is
        a process of its own, and the image cache is shared between them
        (an in-process lock would let two runs write one ``.part``)."""
        return {'name': name, 'path': self.paths.locks, 'external': True,
                'last': last}

    def disk_ops(self):
        """The host's disk operation slots ([compute]
        max_concurrent_disk_ops, today's Nova only); None: no limit."""
        return disk_ops.limit(
            self.settings.get('max_concurrent_disk_ops') or 0,
            self.paths.locks)

    def copy_lock_name(self, is_path):
        return self.paths.base if is_path else self.paths.hex

    def section(self, lock_name, steps):
        """Tasks for ``steps`` run under one lock."""
        last = len(steps) - 1
        return [s.task(self.lock(lock_name, i == last))
                for i, s in enumerate(steps)]

    def article(self, key):
        """The article's note on ``key``, for releases its tables cover."""
        return [article.note(key)] if self.traits.article_notes else []

    def backing_fmt_notes(self):
        """Notes of a step making an overlay: Nova named no backing format
        before modern releases; qemu-img 6.1+ needs one."""
        if self.traits.overlay_backing_fmt:
            return []
        return [deviations.note('backing-fmt')]

    def cleanup_notes(self):
        """Notes of a step whose half-made file Nova left behind."""
        if self.traits.cleanup_on_error:
            return []
        return [deviations.note('partial-copy')]


def grow_fs(build, name, path, variant, resize_step, notes=None,
            made=None):
    """e2fsck + resize2fs on a grown file or LV (disk.api.resize2fs)."""
    wire = {'resize': resize_step}
    if made:
        wire['made'] = made
    return Step(resize.ResizeFilesystem, name,
                {'path': path, 'variant': variant}, wire=wire,
                notes=build.article('e2fsck-first') if notes is None
                else notes)


def grow_image(build, name, path, size, fmt, notes=(), made=None):
    """qemu-img resize; grown or not is decided from the inspected image
    the disk was made from (root-inspect), never from the disk."""
    wire = {'origin': 'root-inspect'}
    if made:
        wire['made'] = made
    if not build.traits.resize_format_pinned:
        notes = [deviations.note('pinned-format'), *notes]
    return Step(resize.ResizeImage, name,
                {'path': path, 'size': size, 'format': fmt}, wire=wire,
                notes=notes)


def check_size(build, touch):
    """Modern Nova: the cached base against the flavor, after fetch."""
    return Step(flavor.VerifyBaseSize, 'root-check-size',
                {'base': build.paths.base, 'size': build.size, 'touch': touch})


def disk_info(build, prefix, disk, fmt):
    """Havana 2013.2.3+: record the disk's format in ``$D/disk.info``."""
    if not build.traits.disk_info:
        return []
    return [diskinfo.RecordDiskFormat(
        f'{prefix}-disk-info',
        inject={'info': build.paths.disk('disk.info'), 'disk': disk,
                'format': fmt, 'atomic': build.traits.disk_info == 'atomic'})]


def preallocation(build, prefix, disk, size):
    """Grizzly+: fallocate the disk when preallocate_images asks for it.

    Grizzly .. Juno tested ``!= 'none'``, so any other value counted; from
    Kilo only ``space`` does.
    """
    t = build.traits
    mode = build.settings['preallocate_images']
    wanted = mode == 'space' if t.preallocate_space_only else mode != 'none'
    if not (t.preallocation and size and wanted):
        return []
    notes = ([deviations.note('fallocate-probe')]
             if t.fallocate_probe_keep_size else [])
    return [preallocate.Preallocate(
        f'{prefix}-preallocate',
        inject={'path': disk, 'size': size, 'probe_keep_size': False},
        notes=notes + build.article('preallocate'))]
