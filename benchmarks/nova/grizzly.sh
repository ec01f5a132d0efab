#!/bin/sh
# What Nova 2013.1.5 (Grizzly) ran for a qcow2 root disk with the default
# configuration (use_cow_images=True, force_raw_images=True,
# preallocate_images=none): fetch_to_raw under [X $hex] (virtual size checked
# against the flavor before the convert), then the overlay on the base, its
# resize and the (failing, ignored) filesystem resize of the qcow2 file under
# [X $B/$hex] (nova-reference.md 2.2, 2.3, 2.4, 3.3).
# usage: grizzly.sh IMAGE_URL INSTANCES_PATH INSTANCE ROOT_GB [sync]
# With "sync", the files made are flushed to disk at the end (fsync), as
# imagepipe flushes them; Nova did not.
# Deviations: curl for the Glance download; flock(1) for Nova's lockf; the
# overlay gets backing_fmt=raw (qemu-img >= 6.1 refuses it without).
set -eu
. "$(dirname "$0")/common.sh" "$@"
disk=$I/$inst/disk
mkdir -p "$B" "$I/locks" "$I/$inst"

fetch_to_raw

(
    flock 9
    qemu-img info "$base" >/dev/null            # cluster size, if any
    qemu-img create -f qcow2 \
        -o "backing_file=$base,backing_fmt=raw" "$disk" >/dev/null
    qemu-img info "$disk" >/dev/null            # extend: virtual size
    qemu-img resize "$disk" $((gb << 30)) >/dev/null
    e2fsck -fp "$disk" >/dev/null 2>&1 || true
    resize2fs "$disk" >/dev/null 2>&1 || true
) 9>"$I/locks/nova-$(printf %s "$base" | tr / _)"

if [ "$flush" = sync ]; then
    sync "$base" "$disk" "$B" "$I/$inst"
fi
