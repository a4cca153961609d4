#!/usr/bin/env bash
# Install doorctl on a Raspberry Pi (run on the Pi over SSH, as root or with sudo). Idempotent.
#
#   sudo scripts/install-pi.sh            # install into /
#   ROOT=/tmp/pi scripts/install-pi.sh    # install into a directory tree (image building, tests):
#                                         # no apt, no users, no systemctl, no doctor against hardware
#
# Lays out: /opt/doorctl (code + venv with system site packages, for apt's python3-lgpio and
# python3-picamera2), /etc/doorctl/doorctl.toml (from config/example.toml, kept if present),
# /var/lib/doorctl, the systemd unit, and the systemd hardware-watchdog setting.
set -euo pipefail
SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${ROOT:-/}"
ROOT="${ROOT%/}"
APP="$ROOT/opt/doorctl"
PYTHON="${PYTHON:-python3}"

log() { printf 'install-pi: %s\n' "$*"; }

if [ -z "$ROOT" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo)" >&2; exit 2; }
    log "apt packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzbar0 python3-venv python3-lgpio \
        python3-picamera2 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libzbar0 python3-venv >/dev/null
    id doorctl >/dev/null 2>&1 || useradd --system --home /var/lib/doorctl --shell /usr/sbin/nologin doorctl
    for group in gpio video dialout; do
        getent group "$group" >/dev/null && usermod -a -G "$group" doorctl
    done
fi

log "code into $APP"
mkdir -p "$APP"
tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=.demo --exclude='__pycache__' -cf - . | tar -C "$APP" -xf -

log "venv (with system site packages: lgpio, picamera2 from apt)"
[ -x "$APP/.venv/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$APP/.venv"
"$APP/.venv/bin/python" -m pip install -q --upgrade pip
# The locked, hashed dependencies (numpy 1.x beside bookworm's picamera2), then the door alone.
"$APP/.venv/bin/python" -m pip install -q --require-hashes -r "$APP/requirements/door-bookworm.txt"
"$APP/.venv/bin/python" -m pip install -q --no-deps "$APP"

log "config, state, unit, watchdog"
install -d -m 0750 "$ROOT/etc/doorctl" "$ROOT/var/lib/doorctl"
[ -f "$ROOT/etc/doorctl/doorctl.toml" ] || install -m 0640 "$SRC/config/example.toml" "$ROOT/etc/doorctl/doorctl.toml"
install -D -m 0644 "$SRC/systemd/doorctl.service" "$ROOT/etc/systemd/system/doorctl.service"
install -d "$ROOT/etc/systemd/system.conf.d"
cat > "$ROOT/etc/systemd/system.conf.d/doorctl-watchdog.conf" <<'CONF'
# The SoC's hardware watchdog: a hung system reboots (and the relay drops with it).
[Manager]
RuntimeWatchdogSec=15
CONF

if [ -z "$ROOT" ]; then
    chown -R doorctl:doorctl /var/lib/doorctl
    chgrp doorctl /etc/doorctl /etc/doorctl/doorctl.toml
    if [ -f /boot/firmware/config.txt ] && ! grep -q '^dtparam=watchdog=on' /boot/firmware/config.txt; then
        echo 'dtparam=watchdog=on' >> /boot/firmware/config.txt
    fi
    systemctl daemon-reload
    systemctl enable doorctl.service
    log "edit /etc/doorctl/doorctl.toml, then: systemctl restart doorctl"
    "$APP/.venv/bin/doorctl" doctor --config /etc/doorctl/doorctl.toml || true
else
    log "installed into $ROOT"
    "$APP/.venv/bin/doorctl" check-config --config "$ROOT/etc/doorctl/doorctl.toml" || true
fi
