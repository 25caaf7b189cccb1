#!/usr/bin/env bash
# The whole job on the embedded store, from nothing: set-up, sample data, layers,
# scans, flags, a check and exports. Everything lands in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
source .venv/bin/activate

mkdir -p out
export REDLINE_DATABASE_URL="sqlite:///out/demo.db"
rm -f out/demo.db out/demo.db-wal out/demo.db-shm

echo "== 1. sample data: Hangjin Banner, Ordos (planted truth in sample_data/truth.json)"
python scripts/make_sample_data.py

echo "== 2. protection layers (Chinese field names mapped by sample_data/mapping.toml)"
redline layers load redline sample_data/redline.gpkg --mapping sample_data/mapping.toml
redline layers load reserve sample_data/reserve.gpkg --mapping sample_data/mapping.toml
redline layers load permit sample_data/permits.zip --mapping sample_data/mapping.toml
redline layers load admin sample_data/admin.kml --mapping sample_data/mapping.toml

echo "== 3. nightly scans: two change products and a land-cover pair"
redline scan sample_data/change_2026-06.tif sample_data/change_2026-09.tif sample_data/landcover_pair.json
echo "-- the same product again changes nothing:"
redline scan sample_data/change_2026-06.tif

echo "== 4. flags"
redline flags list

echo "== 5. an inspector's check over the whole sample area"
redline check sample_data/check_region.geojson

echo "== 6. exports for GIS analysts"
redline export out/flags.gpkg
redline export out/flags_cgcs2000.geojson --crs EPSG:4490 --status new
echo "done: open out/flags.gpkg in QGIS; store at out/demo.db"
