#!/usr/bin/env bash
# Refresh the hashed requirement locks from pyproject.toml (`make lock`): one per target, each
# for the Python of that Debian release on one architecture.
#   requirements/door-<release>-<arch>.txt  what scripts/install-pi.sh installs on a door
#   requirements/dev-bookworm-<arch>.txt    the development venv and CI: the versions a bookworm Pi
#                                           runs, plus the test tools and the pass service's
#                                           dependencies (officepass/pyproject.toml)
# bookworm: Python 3.11, numpy<2 and OpenCV 4.11 (its picamera2 is built against numpy 1.24);
# trixie: Python 3.13, numpy 2. Both glibc >= 2.36 (manylinux_2_36 wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=".venv/bin/uv"
[ -x "$UV" ] || UV="uv"
declare -A PYTHON=([bookworm]=3.11 [trixie]=3.13)
for release in bookworm trixie; do
    for arch in x86_64 aarch64; do
        common=(--python-version "${PYTHON[$release]}" --python-platform "$arch-manylinux_2_36"
                --generate-hashes -c "requirements/$release-constraints.txt" --no-header
                --no-emit-package doorctl-wire requirements/wire-source.in)
        "$UV" pip compile --quiet pyproject.toml --extra pi "${common[@]}" \
            -o "requirements/door-$release-$arch.txt"
        if [ "$release" = bookworm ]; then
            "$UV" pip compile --quiet pyproject.toml officepass/pyproject.toml --extra dev "${common[@]}" \
                -o "requirements/dev-$release-$arch.txt"
        fi
    done
done
echo "lock: requirements/ refreshed"
