#!/usr/bin/env bash
# Vendor the member page's QR decoder from npm into static files, and axe-core (the browser tests'
# accessibility checker) into tests/vendor (`make vendor-js`). The results are committed: the service
# serves jsQR from its own files and fetches nothing at run time, and a clean machine needs no npm.
# Each tarball must match its pinned npm integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# vendor PACKAGE INTEGRITY: unpacks the checked tarball into $work/PACKAGE/package
fetch() {
    local package="$1" integrity="$2" tarball got
    mkdir -p "$work/$package"
    tarball="$(cd "$work/$package" && npm pack --silent "$package")"
    got="sha512-$(openssl dgst -sha512 -binary "$work/$package/$tarball" | base64 -w0)"
    if [ "$got" != "$integrity" ]; then
        echo "vendor-js: $package integrity is $got, expected $integrity: not vendored" >&2
        exit 1
    fi
    tar -xzf "$work/$package/$tarball" -C "$work/$package"
}

fetch "jsqr@1.4.0" "sha512-dxLob7q65Xg2DvstYkRpkYtmKm2sPJ9oFhrhmudT1dZvNFFTlroai3AWSpLey/w5vMcLBXRgOJsbXpdN9HzU/A=="
OUT="officepass/web/static/vendor"
mkdir -p "$OUT"
cp "$work/jsqr@1.4.0/package/dist/jsQR.js" "$OUT/jsQR.js"
cp "$work/jsqr@1.4.0/package/LICENSE" "$OUT/jsQR.LICENSE"
echo "vendor-js: jsqr@1.4.0 -> $OUT/jsQR.js"

fetch "axe-core@4.14.1" "sha512-FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
mkdir -p tests/vendor
cp "$work/axe-core@4.14.1/package/axe.min.js" tests/vendor/axe.min.js
cp "$work/axe-core@4.14.1/package/LICENSE" tests/vendor/axe.LICENSE
echo "vendor-js: axe-core@4.14.1 -> tests/vendor/axe.min.js"
