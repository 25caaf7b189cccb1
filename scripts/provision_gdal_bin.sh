#!/usr/bin/env bash
# Install GDAL's command-line tools (Debian's gdal-bin: gdal_translate, ogr2ogr and, through
# python3-gdal, gdal_polygonize.py and gdal_calc.py) for the benchmark that compares our scan
# with GDAL's own pipeline (scripts/bench_nightly.py). Idempotent; redline itself never needs
# them (it uses GDAL through rasterio and pyogrio).
set -euo pipefail
say() { echo "provision_gdal_bin: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
source "$(dirname "$0")/_debian.sh"

tools=(gdal_translate ogr2ogr gdal_polygonize.py gdal_calc.py)
missing() { for t in "${tools[@]}"; do command -v "$t" >/dev/null || echo "$t"; done; }
[ -z "$(missing)" ] && exit 0
debian_install "$(missing | tr '\n' ' ')(GDAL's command-line tools)" gdal-bin
[ -z "$(missing)" ] || fail "gdal-bin is installed but $(missing | tr '\n' ' ')is still missing"
say "ready: $(gdalinfo --version)"
