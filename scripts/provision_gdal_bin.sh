#!/usr/bin/env bash
# Install GDAL's command-line tools (Debian's gdal-bin: gdal_translate, ogr2ogr and, through
# python3-gdal, gdal_polygonize.py and gdal_calc.py) for the benchmark that compares our scan
# with GDAL's own pipeline (scripts/bench_nightly.py). Idempotent; redline itself never needs
# them (it uses GDAL through rasterio and pyogrio).
set -euo pipefail
say() { echo "provision_gdal_bin: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }

tools=(gdal_translate ogr2ogr gdal_polygonize.py gdal_calc.py)
missing() { for t in "${tools[@]}"; do command -v "$t" >/dev/null || echo "$t"; done; }
[ -z "$(missing)" ] && exit 0
[ "$(id -u)" = 0 ] || fail "$(missing | tr '\n' ' ')not found and this is not root: run 'apt-get install gdal-bin' as root"
command -v apt-get >/dev/null || fail "$(missing | tr '\n' ' ')not found and there is no apt-get: install GDAL's command-line tools"
export DEBIAN_FRONTEND=noninteractive
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! apt-cache show gdal-bin >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>"$err" || fail "apt-get update failed: $(tr '\n' ' ' <"$err")"
fi
say "installing gdal-bin"
apt-get install -y -qq --no-install-recommends gdal-bin >/dev/null 2>"$err" \
  || fail "apt-get install gdal-bin failed: $(tr '\n' ' ' <"$err")"
[ -z "$(missing)" ] || fail "gdal-bin is installed but $(missing | tr '\n' ' ')is still missing"
say "ready: $(gdalinfo --version)"
