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
echo "-- three lines, one list (三线一单): environmental control units and their access list"
redline layers load control sample_data/control_units.gpkg --mapping sample_data/mapping.toml
redline layers load access-list sample_data/access_list.csv

echo "== 3. the nightly batch finds two change products and a land-cover pair, scans each once"
rm -rf out/digests
redline nightly --watch sample_data --settle 0 --digest-dir out/digests
echo "-- the same product again changes nothing:"
redline scan sample_data/change_2026-06.tif

echo "== 4. flags"
redline flags list

echo "== 4a. leads issued by the national platform (CSV, Chinese columns): new flags, or observations of ours"
redline leads import sample_data/national_leads.csv --batch GJ-2026-07
redline leads import sample_data/national_leads.csv --batch GJ-2026-07   # the same batch again: nothing changes
echo "-- a hotline report keyed in by staff (a ground report): a flag with source 'ground'"
redline ground add --lon 108.7101 --lat 39.8530 --activity 采矿 --note "群众举报：河道旁夜间采砂" --ref 12345-0715 --on 2026-07-16

echo "== 4b. the ledger: verify the national lead in the field, put it on the ledger, write the results back"
LEAD=$(redline flags list --json | python -c 'import json, sys; print(next(f["id"] for f in json.load(sys.stdin) if f["source"] == "national"))')
redline flags move "$LEAD" dispatched --note "派核查组"
redline flags move "$LEAD" verified_violation --note "现场核实：线索属实" --deadline "$(date -d '+60 days' +%F)" \
  --responsible "杭锦旗自然资源局"
redline ledger list
redline leads export --batch GJ-2026-07 -o out/leads_results.xlsx
redline ledger export out/ledger.xlsx

echo "== 5. an inspector's check over the whole sample area"
redline check sample_data/check_region.geojson --report out/check_report.pdf

echo "== 5a. a screening of a proposed solar farm (光伏) on the reserve: verdicts, rings, the report"
python - > out/solar_footprint.geojson <<'PY'
import json
centre = next(p for p in json.load(open("sample_data/truth.json"))["patches"] if p["name"] == "mining_core")
lon, lat = centre["centroid_lonlat"]
ring = [[lon - 0.002, lat - 0.0015], [lon + 0.002, lat - 0.0015], [lon + 0.002, lat + 0.0015], [lon - 0.002, lat + 0.0015]]
print(json.dumps({"type": "Polygon", "coordinates": [ring + ring[:1]]}))
PY
redline screen out/solar_footprint.geojson --activity 光伏 --report out/screening_report.pdf

echo "== 5b. reports to file: the problem sheet of the critical flag, and a packet of every new flag"
CRITICAL=$(redline flags list --severity critical --json | python -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
redline report flag "$CRITICAL" -o out/problem_sheet.pdf
redline report flag "$CRITICAL" -o out/problem_sheet.html
redline report flags --status new -o out/problem_sheets.pdf

echo "== 6. exports for GIS analysts"
redline export out/flags.gpkg
redline export out/flags.geojson --status new        # GeoJSON is always RFC 7946 lon/lat
redline export out/flags_cgcs2000.gpkg --crs EPSG:4490 --status new
echo "done: open out/flags.gpkg in QGIS, out/digests/latest.html in a browser, out/check_report.pdf, out/screening_report.pdf and"
echo "      out/problem_sheet.pdf (field form of flag $CRITICAL) in a PDF reader; store at out/demo.db"

echo "== 7. the HTTP API on the same store"
TOKEN=$(redline tokens create demo-admin --role admin --json | python -c 'import json, sys; print(json.load(sys.stdin)["token"])')
if [ -t 0 ] && [ "${REDLINE_DEMO_SERVE:-1}" = 1 ]; then
  echo "serving http://127.0.0.1:8000 (docs: /docs, OGC API Features: /collections); Ctrl-C stops it"
  echo "open the map (this link signs you in as admin): http://127.0.0.1:8000/#token=$TOKEN"
  echo "admin token: $TOKEN"
  echo "try: curl -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' \\"
  echo "       --data @sample_data/check_region.geojson http://127.0.0.1:8000/checks"
  exec redline serve
fi
# not a terminal (or REDLINE_DEMO_SERVE=0): start it, ask it one check, stop it
redline serve --port 8765 > out/serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null' EXIT
python - "$TOKEN" <<'PY'
import json, sys, time
import httpx

base, headers = "http://127.0.0.1:8765", {"Authorization": f"Bearer {sys.argv[1]}"}
for _ in range(100):
    try:
        httpx.get(f"{base}/health").raise_for_status()
        break
    except httpx.HTTPError:
        time.sleep(0.1)
region = json.load(open("sample_data/check_region.geojson"))
answer = httpx.post(f"{base}/checks", json=region, headers=headers, timeout=30).json()
s = answer["summary"]
print(f"POST /checks: {s['conflicts']} conflicts, {s['zones_touched']} zones, observed {s['observed_fraction']:.0%}")
items = httpx.get(f"{base}/collections/flags/items?limit=3", headers=headers).json()
print(f"GET /collections/flags/items: {items['numberMatched']} flags, next page: "
      f"{any(l['rel'] == 'next' for l in items['links'])}")
page = httpx.get(f"{base}/", headers={"Accept": "text/html"})
print(f"GET / (a browser): {page.status_code} {page.headers['content-type'].split(';')[0]}")
PY
echo "the map: http://127.0.0.1:8000/#token=$TOKEN once 'redline serve' runs (this link signs you in)"
echo "API smoke test passed; run 'scripts/demo.sh' in a terminal to keep the server up"
