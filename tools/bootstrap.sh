#!/usr/bin/env bash
# Set up a fresh Debian machine for imagepipe: install the system tools it
# drives (only those missing; needs root or sudo), then a virtualenv in .venv
# with imagepipe and its test requirements. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin

need=()
for pair in qemu-img:qemu-utils mkfs.ext4:e2fsprogs fallocate:util-linux \
            fincore:util-linux sfdisk:fdisk lvcreate:lvm2 dot:graphviz \
            git:git; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f $stamp ] || [ setup.cfg -nt $stamp ] || \
   [ requirements.txt -nt $stamp ] || [ test-requirements.txt -nt $stamp ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r test-requirements.txt -e .
    touch $stamp
fi
