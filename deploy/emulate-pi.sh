#!/usr/bin/env bash
# An emulated Raspberry Pi OS 64-bit user space (Debian bookworm, aarch64, Python 3.11) with edgeface installed by
# deploy/install.sh, so that edgeface's own code runs on arm64 before anyone owns a Pi.
#   sudo deploy/emulate-pi.sh [ROOT]          default ROOT: ~/.cache/edgeface/pi-root (or $EDGEFACE_PI_ROOT)
#   sudo deploy/emulate-pi.sh ROOT run CMD... run one command inside it (as root, /work/shared bound read-only)
# Needs debootstrap and qemu-user-static (apt-get install debootstrap qemu-user-static binfmt-support). With
# binfmt_misc mountable, arm64 binaries run through qemu transparently and the root is entered with chroot; where it
# is not, nothing here can run (qemu-aarch64-static -L would run one process, but pip and install.sh start many).
# Latency inside the emulator says nothing about a Pi: benchmarks/arm64.py records it and never quotes it.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${1:-${EDGEFACE_PI_ROOT:-$HOME/.cache/edgeface/pi-root}}"
SHARED="${EDGEFACE_SHARED:-$HERE/../shared}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

die() { echo "emulate-pi: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install debootstrap"
[ -x /usr/bin/qemu-aarch64-static ] || die "qemu-aarch64-static missing: apt-get install qemu-user-static"

enable_binfmt() {
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
    die "binfmt_misc is not mounted and cannot be mounted here: arm64 programs cannot run"
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    if command -v update-binfmts >/dev/null; then update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true; fi
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then  # register by hand, F: qemu is opened now, so chroot works
    echo ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
      > /proc/sys/fs/binfmt_misc/register || die "cannot register qemu-aarch64 with binfmt_misc"
  fi
}

mount_api() {  # /proc, /dev and the shared data (read-only) inside the root; undone on exit
  mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
  mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
  mkdir -p "$ROOT/work/shared"
  if [ -d "$SHARED" ] && ! mountpoint -q "$ROOT/work/shared"; then
    mount --bind "$SHARED" "$ROOT/work/shared" && mount -o remount,bind,ro "$ROOT/work/shared"
  fi
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  # a network that passes through an inspecting proxy: the root trusts what the host trusts
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
    chroot "$ROOT" update-ca-certificates >/dev/null 2>&1 || true
  fi
}

unmount_api() {
  for m in work/shared dev proc; do mountpoint -q "$ROOT/$m" && umount -l "$ROOT/$m"; done
  return 0
}

enable_binfmt
if [ ! -x "$ROOT/usr/bin/python3" ]; then
  echo "emulate-pi: debootstrap arm64 bookworm into $ROOT (about 10 minutes)"
  debootstrap --arch=arm64 --variant=minbase \
    --include=python3,python3-venv,python3-pip,libglib2.0-0,ca-certificates,systemd,passwd \
    bookworm "$ROOT" "$MIRROR"
fi
trap unmount_api EXIT
mount_api

if [ "${2:-}" = "run" ]; then
  shift 2
  chroot "$ROOT" /usr/bin/env -i PATH=/opt/edgeface/venv/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 EDGEFACE_QUIET=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$@"
  exit
fi

echo "emulate-pi: $(chroot "$ROOT" uname -m), $(chroot "$ROOT" python3 --version), $(. "$ROOT/etc/os-release"; echo "$PRETTY_NAME")"
rm -rf "$ROOT/opt/src" && mkdir -p "$ROOT/opt/src"
# the checkout as committed plus any working changes, without the venv or caches
tar -C "$HERE" --exclude=.venv --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ -cf - . |
  tar -C "$ROOT/opt/src" -xf -
# install.sh as written, in the arm64 root (no booted systemd there: it installs the unit for the next boot)
set +e
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  PIP_CERT=/etc/ssl/certs/ca-certificates.crt DEBIAN_FRONTEND=noninteractive bash /opt/src/deploy/install.sh /opt/src 2>&1 | tee "$ROOT/opt/install.log"
status=${PIPESTATUS[0]}  # what `set -e` would have stopped at is in the log
set -e
echo "emulate-pi: install.sh exited $status (see $ROOT/opt/install.log)"
chroot "$ROOT" /opt/edgeface/venv/bin/edgeface info --json >/dev/null && echo "emulate-pi: edgeface runs on arm64"
