"""Copying a cached base (Nova's ``libvirt.utils.copy_image``).

Nova copied the base to the instance disk (Raw backend, or use_cow_images
False) and, in Essex and Folsom, to a resized base ``$B/<hex>_<G>`` that a
qcow2 overlay was then laid on.
"""

import os

from taskflow.types import failure

from imagepipe import tools
from imagepipe.tasks import contract
from imagepipe.tasks import safefs


def tmp_name(dest):
    return dest + '.tmp'


def cp_argv(src, dest):
    """Sparse copy, sharing blocks where the filesystem can (reflink)."""
    return ['cp', '--sparse=always', '--reflink=auto', src, dest]


def _copy(src, dest, staged):
    tmp = tmp_name(dest)
    # cp writes into the file made here, keeping its mode
    os.close(safefs.create(tmp, safefs.source_mode(src)))
    tools.run(*cp_argv(src, tmp))
    if staged:
        # the steps that finish the entry publish it (ResizeFilesystem)
        contract.drop_cache(src)
        return {'path': dest, 'staged': tmp, 'copied': True,
                'size': os.path.getsize(tmp)}
    safefs.publish(tmp, dest)
    # cp read the source and wrote the copy through the page cache: both
    # would stay there, twice the image, for guests that read with
    # cache=none. The copy is flushed by now, so its pages can go too.
    contract.drop_cache(src)
    contract.drop_cache(dest)
    return {'path': dest, 'copied': True, 'size': os.path.getsize(dest)}


def _cache_entry_failed(cache_scope, flow_failures):
    """True when a task inside the entry's rm-on-error scope failed."""
    return any(name in flow_failures for name in cache_scope)


class CopyImage(contract.ImageTask):
    """``cp`` a base to ``dest`` (an instance disk or a resized base).

    ``reuse``: an existing ``dest`` is kept as it is (Nova reused an existing
    ``<hex>_<G>``). ``cache_scope`` None means ``dest`` is an instance file
    that revert removes; a list means ``dest`` is a cache entry that revert
    removes only if it was copied by this run and one of the named tasks
    (Nova's rm-on-error scope around cp + extend) is among the failures: an
    empty list keeps it whatever happens (Essex). ``staged``: the copy stays
    at ``dest.tmp`` (the result's ``staged``) for later steps to grow and
    publish, so that a reused ``dest`` is always a finished one.
    """

    source = 'libvirt.utils.copy_image'
    notes = ('Nova ran a plain cp (sparse-aware by default); --reflink=auto '
             'shares the blocks where the filesystem supports it',)

    def work(self, src, dest, reuse, cache_scope, staged=False):
        if reuse and safefs.existing_file(dest, 'reuse it'):
            return {'path': dest, 'copied': False,
                    'size': os.path.getsize(dest)}
        return _copy(src, dest, staged)

    def undo(self, dest, cache_scope, result, flow_failures, **_):
        safefs.remove(tmp_name(dest))
        if cache_scope is None:
            safefs.remove(dest)
        elif (not isinstance(result, failure.Failure) and result['copied']
              and _cache_entry_failed(cache_scope, flow_failures)):
            safefs.remove(dest)

    def preview(self, src, dest, reuse, cache_scope, **_):
        notes = []
        if reuse:
            notes.append(f'skipped if {dest} already exists (reused as is)')
        if cache_scope is None:
            notes.append(f'{dest} is removed if the flow fails')
        elif cache_scope:
            notes.append(f'{dest} is removed if one of '
                         f'{", ".join(cache_scope)} fails')
        else:
            notes.append(f'{dest} is kept even if the flow fails')
        return {'command': cp_argv(src, tmp_name(dest)),
                'creates': [dest], 'notes': notes}
