#!/usr/bin/env bash
# Install what doorctl needs on a Debian bookworm / Raspberry Pi OS machine, idempotently:
# the apt packages (only those missing; sudo when not root) and the Python venv at .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# postgresql: the pass service's tests start a throwaway cluster of their own (never the machine's);
# chromium: its browser tests (Playwright drives Debian's build).
APT_PACKAGES=(libzbar0 mosquitto python3-venv postgresql chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
stamp=.venv/.installed
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv"
    "$PYTHON" -m venv .venv
fi
# The development venv runs what a bookworm Pi runs (numpy 1.x, OpenCV 4.11), on this architecture.
LOCK="requirements/dev-bookworm-$(uname -m).txt"
[ -f "$LOCK" ] || { echo "bootstrap: no lock for $(uname -m) (x86_64 and aarch64 only)" >&2; exit 2; }
# Reinstall only when the lock or a project file changed since the last install.
if [ ! -f "$stamp" ] || [ "$LOCK" -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
        || [ hw-sim/pyproject.toml -nt "$stamp" ] || [ officepass/pyproject.toml -nt "$stamp" ] \
        || [ wire/pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: installing Python packages into .venv (from $LOCK, hashes checked)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q --require-hashes -r "$LOCK"
    # The wire, the door, and beside them the simulator and the pass service (development only), on
    # the locked dependencies.
    .venv/bin/python -m pip install -q --no-deps -e ./wire -e . -e ./hw-sim -e ./officepass
    touch "$stamp"
fi
