#!/usr/bin/env bash
# Vendor the member page's QR decoder from npm into static files (`make vendor-js`). The result is
# committed: the service serves it from its own files and fetches nothing at run time, and a
# clean machine needs no npm. The tarball must match the pinned npm integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="jsqr@1.4.0"
INTEGRITY="sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A=="
OUT="officepass/web/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tarball="$(cd "$work" && npm pack --silent "$PACKAGE")"
got="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
    echo "vendor-js: $PACKAGE integrity is $got, expected $INTEGRITY: not vendored" >&2
    exit 1
fi
tar -xzf "$work/$tarball" -C "$work"
mkdir -p "$OUT"
cp "$work/package/dist/jsQR.js" "$OUT/jsQR.js"
cp "$work/package/LICENSE" "$OUT/jsQR.LICENSE"
echo "vendor-js: $PACKAGE -> $OUT/jsQR.js"
