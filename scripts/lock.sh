#!/usr/bin/env bash
# Refresh the hashed requirement locks from pyproject.toml (`make lock`). Each lock covers
# Python 3.11 on Linux x86_64 and aarch64 (uv's universal resolution, every wheel's hash).
#   requirements/door-bookworm.txt  what scripts/install-pi.sh installs on a bookworm Pi
#   requirements/dev-bookworm.txt   the development venv (the door + test tools), so CI runs the
#                                   versions a bookworm Pi runs
set -euo pipefail
cd "$(dirname "$0")/.."
UV=".venv/bin/uv"
[ -x "$UV" ] || UV="uv"
common=(--python-version 3.11 --universal --generate-hashes -c requirements/bookworm-constraints.txt)
"$UV" pip compile pyproject.toml "${common[@]}" -o requirements/door-bookworm.txt
"$UV" pip compile pyproject.toml --extra dev "${common[@]}" -o requirements/dev-bookworm.txt
