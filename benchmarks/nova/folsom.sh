#!/bin/sh
# What Nova 2012.2.4 (Folsom) ran for a qcow2 root disk with the default
# configuration (use_cow_images=True, force_raw_images=True): fetch_to_raw
# under [X $hex], then the resized copy <hex>_<G>, its resize and the overlay
# under [X $B/$hex] (nova-reference.md 2.2, 2.3, 3.2).
# usage: folsom.sh IMAGE_URL INSTANCES_PATH INSTANCE ROOT_GB [sync]
# With "sync", the files made are flushed to disk at the end (fsync), as
# imagepipe flushes them; Nova did not.
# Deviations: curl for the Glance download; flock(1) for Nova's lockf; the
# overlay gets backing_fmt=raw (qemu-img >= 6.1 refuses it without).
set -eu
. "$(dirname "$0")/common.sh" "$@"
mkdir -p "$B" "$I/locks" "$I/$inst"

fetch_to_raw

resized=${base}_$gb
(
    flock 9
    if [ ! -e "$resized" ]; then
        cp "$base" "$resized"
        qemu-img info "$resized" >/dev/null        # extend: virtual size
        qemu-img resize "$resized" $((gb << 30)) >/dev/null 2>&1
        e2fsck -fp "$resized" >/dev/null 2>&1 || true
        resize2fs "$resized" >/dev/null 2>&1 || true
    fi
    qemu-img create -f qcow2 \
        -o "backing_file=$resized,backing_fmt=raw" "$I/$inst/disk" >/dev/null
) 9>"$I/locks/nova-$(printf %s "$base" | tr / _)"

if [ "$flush" = sync ]; then
    sync "$base" "$resized" "$I/$inst/disk" "$B" "$I/$inst"
fi
