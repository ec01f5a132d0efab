#!/usr/bin/env bash
# Set up a fresh Debian machine for imagepipe: install the system tools it
# drives (only those missing; needs root or sudo), then a virtualenv in .venv
# with imagepipe and its test requirements. Safe to run again.
#
#   tools/bootstrap.sh           what imagepipe itself runs
#   tools/bootstrap.sh --tests   and what the boot tests need (QEMU, libvirt,
#                                a kernel and busybox for the tiny guest,
#                                chromium for the docs' rendering test,
#                                redis-server and PostgreSQL for the fleet
#                                tests, which start their own servers)
set -euo pipefail
tests=false; [ "${1:-}" = "--tests" ] && tests=true
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/sbin:/sbin

need=()
for pair in qemu-img:qemu-utils mkfs.ext4:e2fsprogs fallocate:util-linux \
            fincore:util-linux sfdisk:fdisk mkfs.vfat:dosfstools \
            lvcreate:lvm2 dot:graphviz \
            git:git; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
# The boot tests (tests/functional/test_boot.py): QEMU (TCG), libvirt run
# without systemd, and the tiny guest's kernel and static busybox, all from
# Debian packages (the guest is built from them, nothing else is fetched).
if $tests; then
    for pair in qemu-system-x86_64:qemu-system-x86 \
                libvirtd:libvirt-daemon-system \
                virtlogd:libvirt-daemon-system virsh:libvirt-clients \
                chromium:chromium; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
    done
    # The fleet tests (tests/functional/test_fleet*.py) start a redis-server
    # and a PostgreSQL cluster of their own (tests/functional/servers.py).
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    for pkg in busybox-static linux-image-cloud-amd64 postgresql; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null \
            | grep -q 'ok installed' || need+=("$pkg")
    done
fi
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${need[@]}" >/dev/null
fi

# libvirt's QEMU runs as root for the boot tests: /dev/kvm is root-only here
# and KVM unusable, and as user libvirt-qemu libvirt re-probes QEMU on every
# call (about 4 s each). Appended once; the packaged file is kept otherwise.
qemu_conf=/etc/libvirt/qemu.conf
if $tests && [ -f $qemu_conf ] && ! grep -q '^user = "root"' $qemu_conf; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    printf '\n# imagepipe boot tests (tools/bootstrap.sh)\nuser = "root"\ngroup = "root"\n' \
        | $sudo tee -a $qemu_conf >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f $stamp ] || [ setup.cfg -nt $stamp ] || \
   [ requirements.txt -nt $stamp ] || [ test-requirements.txt -nt $stamp ]; then
    .venv/bin/pip install -q --upgrade pip
    # with the [database] and [fleet] extras: the tests use taskflow's SQL
    # backend on SQLite and PostgreSQL, and its Redis jobboard
    .venv/bin/pip install -q -r test-requirements.txt -e '.[database,fleet]'
    touch $stamp
fi
