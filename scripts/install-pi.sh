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

# The target: the Debian release (bookworm or trixie, Raspberry Pi OS included) and the architecture
# pick the hashed lock. bookworm keeps numpy 1.x for its picamera2; trixie runs numpy 2.
. "$ROOT/etc/os-release" 2>/dev/null || . /etc/os-release
RELEASE="${DOORCTL_RELEASE:-${VERSION_CODENAME:-bookworm}}"
ARCH="$(uname -m)"
LOCK="$SRC/requirements/door-$RELEASE-$ARCH.txt"
[ -f "$LOCK" ] || { echo "install-pi: no lock for $RELEASE on $ARCH (requirements/door-*.txt)" >&2; exit 2; }

apt_install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }
if [ -z "$ROOT" ]; then
    [ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo)" >&2; exit 2; }
    log "apt packages ($RELEASE, $ARCH)"
    apt-get update -qq
    apt_install libzbar0 python3-venv
    # Raspberry Pi OS has these; plain Debian may not (lgpio then comes from PyPI, see the lock).
    for pkg in python3-lgpio python3-picamera2; do
        if apt-cache show "$pkg" >/dev/null 2>&1; then apt_install "$pkg"; else log "no $pkg in this OS's archive"; fi
    done
    id doorctl >/dev/null 2>&1 || useradd --system --home /var/lib/doorctl --shell /usr/sbin/nologin doorctl
    # The groups that own GPIO, cameras and serial ports, where this system has them (User= in the
    # unit brings the user's groups; the unit names none, so a missing one cannot stop it).
    for group in gpio video dialout; do
        if getent group "$group" >/dev/null; then usermod -a -G "$group" doorctl; fi
    done
fi

log "code into $APP"
mkdir -p "$APP"
# Not the pass service (officepass/): nothing of it belongs on a door.
tar -C "$SRC" --exclude=.venv --exclude=.git --exclude=.demo --exclude='__pycache__' --exclude=./officepass \
    -cf - . | tar -C "$APP" -xf -

log "venv (with system site packages: lgpio, picamera2 from apt)"
[ -x "$APP/.venv/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$APP/.venv"
"$APP/.venv/bin/python" -m pip install -q --upgrade pip
# The locked, hashed dependencies for this release and architecture, then the wire and the door.
log "dependencies from $(basename "$LOCK")"
"$APP/.venv/bin/python" -m pip install -q --require-hashes -r "$LOCK"
"$APP/.venv/bin/python" -m pip install -q --no-deps "$APP/wire" "$APP"
if [ "$ARCH" != x86_64 ] && ! "$APP/.venv/bin/python" -c "import lgpio" 2>/dev/null; then
    log "WARNING: no lgpio for this Python: install python3-lgpio (Raspberry Pi OS) for real GPIO"
fi

log "releases: current -> this install (updates switch it; contract §11)"
# The technician's install is what runs: `current` points at it again, whatever a release did.
ln -sfn "/opt/doorctl/.venv" "$APP/current.new" && mv -T "$APP/current.new" "$APP/current"
install -d -m 0755 "$APP/releases"
# The wheels of this lock, kept for the update agent: a release that keeps a dependency's version
# does not download it again (pip takes them from its own cache just filled).
install -d -m 0700 "$ROOT/var/cache/doorctl-update"
"$APP/.venv/bin/python" -m pip download -q --no-deps --require-hashes -r "$LOCK" -d "$ROOT/var/cache/doorctl-update" \
    || log "WARNING: the lock's wheels were not kept for updates (the first update downloads them)"

log "config, state, unit, watchdog"
install -d -m 0750 "$ROOT/etc/doorctl" "$ROOT/var/lib/doorctl" "$ROOT/var/lib/doorctl/update"
[ -f "$ROOT/etc/doorctl/doorctl.toml" ] || install -m 0640 "$SRC/config/example.toml" "$ROOT/etc/doorctl/doorctl.toml"
install -D -m 0644 "$SRC/systemd/doorctl.service" "$ROOT/etc/systemd/system/doorctl.service"
install -D -m 0644 "$SRC/systemd/doorctl-update.service" "$ROOT/etc/systemd/system/doorctl-update.service"
install -D -m 0644 "$SRC/systemd/doorctl-update.path" "$ROOT/etc/systemd/system/doorctl-update.path"
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
    systemctl enable --now doorctl-update.path
    "$APP/.venv/bin/doorctl" doctor --config /etc/doorctl/doorctl.toml || true
    log "the wiring (pins, readers) is in /etc/doorctl/doorctl.toml; one command remains, the line the"
    log "operator's \`officepass door add STORE DOOR\` (or the console's \"Add a door\") printed:"
    log "  sudo $APP/.venv/bin/doorctl enroll --service https://PASS-SERVICE CODE"
else
    log "installed into $ROOT"
    "$APP/.venv/bin/doorctl" check-config --config "$ROOT/etc/doorctl/doorctl.toml" || true
fi
