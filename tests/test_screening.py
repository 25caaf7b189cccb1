"""Screening against "three lines, one list": control units and their access lists, verdicts with
the list entry cited, overlap areas and geometry, nearest zones and the 1/5/10 km proximity table.

Expected areas and distances come from pyproj's Geod directly (tests/georef.py and a brute-force
nearest distance over densified outlines), never from redline.geo. Both stores.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pytest
import shapely
import shapely.geometry

from redline.accesslist import AccessLimits, read_access_list
from redline.errors import FieldMappingError, InputError, TooLargeError
from redline.layers import read_layer
from redline.model import ScreeningAnswer
from redline.rules import load_rules
from redline.screening import screen

from .georef import WGS84, geodesic_ha

LON, LAT = 108.70, 39.85
# two control units side by side (each ~8.5 km x 5.5 km), a footprint inside the priority one
PRIORITY = shapely.box(LON - 0.05, LAT - 0.025, LON + 0.05, LAT + 0.025)
KEY = shapely.box(LON + 0.05, LAT - 0.025, LON + 0.15, LAT + 0.025)
FOOTPRINT = shapely.box(LON - 0.002, LAT - 0.0015, LON + 0.002, LAT + 0.0015)
UNITS = [
    (PRIORITY, {"DYBM": "ZH15062510001", "DYMC": "库布其沙漠优先保护单元", "DYLX": "优先保护单元"}),
    (KEY, {"DYBM": "ZH15062520001", "DYMC": "独贵塔拉重点管控单元", "DYLX": "key control"}),
]
UNIT_MAP = {"code": "DYBM", "name": "DYMC", "unit_type": "DYLX"}
ACCESS = [
    ("环境管控单元编码", "活动类型", "准入类别", "准入条件"),
    ("ZH15062510001", "采矿", "禁止", "禁止新建矿山"),
    ("ZH15062510001", "光伏", "限制", "仅限光伏治沙项目，须经审批"),
    ("ZH15062510001", "全部", "禁止", "禁止与生态保护无关的开发建设"),
    ("ZH15062520001", "工业", "允许", ""),
]


def deg_east(metres: float, lat: float = LAT) -> float:
    """Degrees of longitude that span about ``metres`` at ``lat`` (only to lay zones out)."""
    return metres / (111_320.0 * np.cos(np.radians(lat)))


def geodesic_gap_m(a, b, step_deg: float = 0.00005) -> float:
    """The least geodesic distance between the outlines of two lon/lat polygons (they do not
    overlap), by brute force over densified outlines: an independent reference."""
    pa = np.asarray(shapely.segmentize(a.exterior, step_deg).coords)
    pb = np.asarray(shapely.segmentize(b.exterior, step_deg).coords)
    lon1, lat1 = np.repeat(pa[:, 0], len(pb)), np.repeat(pa[:, 1], len(pb))
    lon2, lat2 = np.tile(pb[:, 0], len(pa)), np.tile(pb[:, 1], len(pa))
    _, _, dist = WGS84.inv(lon1, lat1, lon2, lat2)
    return float(np.min(dist))


def write_layer(path: Path, rows, crs="EPSG:4326") -> Path:
    gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=crs).to_file(path, driver="GPKG")
    return path


def write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def write_xlsx(path: Path, rows, sheet: str = "清单") -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


@pytest.fixture
def zoned(store, tmp_path):
    """The store with two control units, their access list, a red line, a reserve zone and
    zones at known distances east of the footprint."""
    store.add_layer_version(read_layer("control", write_layer(tmp_path / "units.gpkg", UNITS), mapping=UNIT_MAP))
    store.add_access_list(read_access_list(write_csv(tmp_path / "access.csv", ACCESS)))
    x1 = FOOTPRINT.bounds[2]
    box = lambda m0, m1: shapely.box(x1 + deg_east(m0), LAT - 0.001, x1 + deg_east(m1), LAT + 0.001)  # noqa: E731
    redline = [
        (box(700, 1200), {"name": "近红线", "function_type": "防风固沙", "code": "RL-A"}),  # ~0.7 km: ring 1
        (box(12_000, 12_500), {"name": "远红线", "function_type": "水源涵养", "code": "RL-B"}),  # beyond 10 km
    ]
    reserve = [
        (box(3_000, 3_400), {"zone": "核心区", "name": "梭梭林保护区"}),  # ~3 km: ring 5
        (box(7_000, 7_600), {"zone": "缓冲区", "name": "梭梭林保护区"}),  # ~7 km: ring 10
    ]
    store.add_layer_version(read_layer("redline", write_layer(tmp_path / "rl.gpkg", redline)))
    store.add_layer_version(read_layer("reserve", write_layer(tmp_path / "res.gpkg", reserve)))
    return {"redline": redline, "reserve": reserve}


def test_prohibited_in_a_priority_unit_cites_the_list_entry(store, zoned):
    a = screen(store, FOOTPRINT, "mining", load_rules())
    ScreeningAnswer.model_validate(a)
    assert a["verdict"] == "prohibited" and a["zones"] == []  # no red line or reserve touched
    (unit,) = a["control_units"]
    assert (unit["layer"], unit["code"], unit["name"]) == ("control", "ZH15062510001", "库布其沙漠优先保护单元")
    assert unit["regime"] == "priority_protection_unit" and unit["verdict"] == "prohibited"
    assert unit["entry"] == {
        "unit_code": "ZH15062510001",
        "list_version": 1,
        "row": 2,  # the spreadsheet row: the header is row 1
        "activity": "mining",
        "activity_text": "采矿",
        "decision": "prohibited",
        "condition": "禁止新建矿山",
    }
    assert "access list v1 row 2" in unit["rule"]
    # the whole footprint lies in the unit: overlap = footprint, geodesic, in ha and mu
    assert unit["overlap_ha"] == pytest.approx(geodesic_ha(FOOTPRINT), abs=1e-4)
    assert unit["overlap_mu"] == pytest.approx(geodesic_ha(FOOTPRINT) * 15, abs=0.01)
    overlap = shapely.geometry.shape(unit["overlap_geometry"])
    assert overlap.symmetric_difference(FOOTPRINT).area < 1e-12
    assert a["access_list_version"] == 1 and a["layer_versions"]["access_list"] == 1


@pytest.mark.parametrize("word", ["光伏", "solar", "energy"])
def test_restricted_activity_needs_approval_with_its_condition(store, zoned, word):
    a = screen(store, FOOTPRINT, word, load_rules())
    assert a["activity"] == "energy" and a["verdict"] == "needs_approval"
    (unit,) = a["control_units"]
    assert unit["verdict"] == "needs_approval" and unit["condition"] == "仅限光伏治沙项目，须经审批"
    assert unit["entry"]["row"] == 3 and unit["entry"]["decision"] == "restricted"


def test_entry_for_every_activity_and_a_footprint_across_two_units(store, zoned):
    # construction: no entry of its own in the priority unit, so 全部 (every activity) decides
    across = shapely.box(LON + 0.048, LAT - 0.001, LON + 0.052, LAT + 0.001)
    a = screen(store, across, "construction", load_rules())
    units = {u["code"]: u for u in a["control_units"]}
    assert units["ZH15062510001"]["verdict"] == "prohibited" and units["ZH15062510001"]["entry"]["row"] == 4
    assert units["ZH15062510001"]["entry"]["activity"] == "*"
    # the key unit lists no entry for construction: clear, and the answer says why
    assert units["ZH15062520001"]["verdict"] == "clear" and units["ZH15062520001"]["entry"] is None
    assert "no entry" in units["ZH15062520001"]["rule"]
    assert a["verdict"] == "prohibited" and a["control_units"][0]["code"] == "ZH15062510001"  # strictest first
    # each unit's overlap is its half of the footprint, and the halves add up to the footprint
    halves = [geodesic_ha(shapely.intersection(across, g)) for g in (PRIORITY, KEY)]
    assert units["ZH15062510001"]["overlap_ha"] == pytest.approx(halves[0], abs=1e-4)
    assert units["ZH15062520001"]["overlap_ha"] == pytest.approx(halves[1], abs=1e-4)
    industrial = screen(store, across, "industry", load_rules())
    assert {u["code"]: u["verdict"] for u in industrial["control_units"]} == {
        "ZH15062510001": "prohibited",
        "ZH15062520001": "clear",
    }
    assert {u["code"]: (u["entry"] or {}).get("decision") for u in industrial["control_units"]} == {
        "ZH15062510001": "prohibited",
        "ZH15062520001": "allowed",
    }


def test_proximity_rings_and_nearest_zones_against_geod(store, zoned):
    a = screen(store, FOOTPRINT, "tourism", load_rules())
    expected = {}
    for layer, rows in zoned.items():
        for g, attrs in rows:
            d = geodesic_gap_m(FOOTPRINT, g)
            expected[(layer, attrs.get("code") or attrs["zone"])] = d
    got = {(p["layer"], p["code"] or {"core": "核心区", "buffer": "缓冲区"}[p["regime"]]): p for p in a["proximity"]}
    for key, d in expected.items():
        if d > 10_000:
            assert key not in got, key  # beyond the outermost ring
            continue
        assert got[key]["distance_m"] == pytest.approx(d, abs=2.0), key
        assert got[key]["ring_km"] == min(r for r in (1, 5, 10) if d <= r * 1000), key
    assert sorted(round(p["distance_m"]) for p in a["proximity"]) == [round(p["distance_m"]) for p in a["proximity"]]
    rings = {r["km"]: r["counts"] for r in a["rings"]}
    # the priority unit (touched, 0 m) and the key unit (its west edge ~4 km east) are control units too
    key_gap = geodesic_gap_m(FOOTPRINT, KEY)
    assert 3_000 < key_gap < 5_000
    assert rings[1] == {"redline": 1, "reserve": 0, "control": 1}
    assert rings[5] == {"redline": 1, "reserve": 1, "control": 2}
    assert rings[10] == {"redline": 1, "reserve": 2, "control": 2}
    assert a["nearest_redline"]["code"] == "RL-A"
    assert a["nearest_redline"]["distance_m"] == pytest.approx(expected[("redline", "RL-A")], abs=2.0)
    assert a["nearest_reserve"]["regime"] == "core"
    assert a["nearest_reserve"]["distance_m"] == pytest.approx(expected[("reserve", "核心区")], abs=2.0)


def test_nearest_red_line_beyond_the_rings_and_inside_one(store, zoned):
    far = shapely.affinity.translate(FOOTPRINT, xoff=-0.03)  # RL-A now ~3.3 km further west of it
    a = screen(store, far, "tourism", load_rules())
    d = geodesic_gap_m(far, zoned["redline"][0][0])
    assert a["nearest_redline"]["distance_m"] == pytest.approx(d, abs=2.0)
    inside = shapely.box(*zoned["redline"][0][0].buffer(-0.0002).bounds)
    b = screen(store, inside, "mining", load_rules())
    assert b["nearest_redline"]["distance_m"] == 0 and b["zones"][0]["layer"] == "redline"
    assert b["zones"][0]["verdict"] == "prohibited"
    assert b["zones"][0]["overlap_ha"] == pytest.approx(geodesic_ha(inside), abs=1e-4)


def test_a_new_access_list_version_replaces_the_old_one(store, zoned, tmp_path):
    rows = [("unit_code", "activity", "decision", "condition"), ("ZH15062510001", "mining", "restricted", "环评批复")]
    store.add_access_list(read_access_list(write_xlsx(tmp_path / "access.xlsx", rows)))
    a = screen(store, FOOTPRINT, "mine", load_rules())
    (unit,) = a["control_units"]
    assert unit["verdict"] == "needs_approval" and unit["entry"]["list_version"] == 2
    assert unit["entry"]["row"] == 2 and unit["condition"] == "环评批复"
    versions = {(v["kind"], v["version"]) for v in store.layer_versions(current_only=False)}
    assert {("access_list", 1), ("access_list", 2), ("control", 1)} <= versions


def test_no_access_list_loaded_is_said(store, tmp_path):
    store.add_layer_version(read_layer("control", write_layer(tmp_path / "units.gpkg", UNITS), mapping=UNIT_MAP))
    a = screen(store, FOOTPRINT, "mining", load_rules())
    assert a["access_list_version"] is None and a["verdict"] == "clear"
    assert a["control_units"][0]["rule"] == "no access list loaded"
    assert a["nearest_redline"] is None and a["nearest_reserve"] is None


# --- reading access lists and control units: hostile and broken input --------------------------


def test_access_list_from_xlsx_gbk_csv_and_a_mapping(tmp_path):
    xlsx = read_access_list(write_xlsx(tmp_path / "a.xlsx", ACCESS), sheet="清单")
    assert xlsx.format == "xlsx" and len(xlsx.entries) == 4 and xlsx.summary()["units"] == 2
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes("\n".join(",".join(r) for r in ACCESS).encode("gb18030"))
    entries = read_access_list(gbk).entries
    assert [(e.activity, e.decision) for e in entries] == [
        ("mining", "prohibited"),
        ("energy", "restricted"),
        ("*", "prohibited"),
        ("industrial", "allowed"),
    ]
    renamed = write_csv(tmp_path / "r.csv", [("DY", "HD", "LB", "TJ"), ("X1", "road", "允许", "")])
    report = read_access_list(renamed, mapping={"unit_code": "DY", "activity": "HD", "decision": "LB"})
    assert report.entries[0].activity == "transport" and report.entries[0].unit_code == "X1"


@pytest.mark.parametrize(
    "rows, error, fragment",
    [
        ([("code", "activity"), ("X", "mining")], FieldMappingError, "no decision column"),
        ([("code", "activity", "decision"), ("X", "volcano", "禁止")], FieldMappingError, "row 2: unknown activity"),
        (
            [("code", "activity", "decision"), ("X", "mining", "maybe")],
            FieldMappingError,
            "unknown access list decision",
        ),
        ([("code", "activity", "decision"), ("X", "mining", "限制")], FieldMappingError, "needs its condition"),
        ([("code", "activity", "decision"), ("", "mining", "禁止")], FieldMappingError, "unit_code is empty"),
        ([("code", "activity", "decision")], InputError, "no entries"),
    ],
)
def test_broken_access_lists_are_refused_with_the_row(tmp_path, rows, error, fragment):
    with pytest.raises(error, match=fragment):
        read_access_list(write_csv(tmp_path / "bad.csv", rows))


def test_hostile_access_list_files(tmp_path):
    old_xls = tmp_path / "old.xlsx"
    old_xls.write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 600)
    with pytest.raises(InputError, match="old .xls"):
        read_access_list(old_xls)
    notbook = tmp_path / "not.xlsx"
    with zipfile.ZipFile(notbook, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(InputError, match="not an XLSX workbook"):
        read_access_list(notbook)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", b"\x00" * (50 * 1024 * 1024))
    with pytest.raises(TooLargeError, match="unpacks"):
        read_access_list(bomb)
    # entity expansion inside a sheet: refused, never expanded
    ok = write_xlsx(tmp_path / "ok.xlsx", ACCESS)
    evil = tmp_path / "evil.xlsx"
    with zipfile.ZipFile(ok) as zin, zipfile.ZipFile(evil, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                lol = b'<!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
                data = (lol + data).replace(b"<v>", b"<v>&b;", 1)
            zout.writestr(item, data)
    with pytest.raises(InputError, match="not a readable XLSX"):
        read_access_list(evil)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(InputError, match="not a CSV"):
        read_access_list(binary)
    many = write_csv(tmp_path / "many.csv", [ACCESS[0]] + [ACCESS[1]] * 50)
    with pytest.raises(TooLargeError, match="more than 10 rows"):
        read_access_list(many, limits=AccessLimits(max_rows=10))
    wide = write_csv(tmp_path / "wide.csv", [ACCESS[0], ("X", "mining", "禁止", "很" * 5000)])
    with pytest.raises(TooLargeError, match="row 2"):
        read_access_list(wide)
    with pytest.raises(InputError, match="no such file"):
        read_access_list(tmp_path / "missing.csv")


def test_control_unit_layer_needs_types_and_unique_codes(tmp_path):
    bad_type = [(PRIORITY, {**UNITS[0][1], "DYLX": "三级单元"})]
    with pytest.raises(FieldMappingError, match="unknown control unit type"):
        read_layer("control", write_layer(tmp_path / "t.gpkg", bad_type), mapping=UNIT_MAP)
    twice = [UNITS[0], (KEY, {**UNITS[0][1], "DYMC": "另一单元"})]
    with pytest.raises(FieldMappingError, match="used by"):
        read_layer("control", write_layer(tmp_path / "d.gpkg", twice), mapping=UNIT_MAP)
    report = read_layer("control", write_layer(tmp_path / "u.gpkg", UNITS, crs="EPSG:4326"), mapping=UNIT_MAP)
    assert [z.regime for z in report.zones] == ["priority_protection_unit", "key_control_unit"]


# --- the command line ----------------------------------------------------------------------------

REDLINE = str(Path(sys.executable).with_name("redline"))


def run(db: str, *args):
    env = {**os.environ, "REDLINE_DATABASE_URL": db}
    return subprocess.run([REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_cli_loads_units_and_list_and_screens(store_url, tmp_path):
    units = write_layer(tmp_path / "units.gpkg", UNITS, crs="EPSG:4326")
    p = run(store_url, "layers", "load", "control", units, "-f", "code=DYBM", "-f", "name=DYMC", "-f", "unit_type=DYLX")
    assert p.returncode == 0, p.stderr
    p = run(store_url, "layers", "load", "access-list", write_csv(tmp_path / "a.csv", ACCESS), "--json")
    assert p.returncode == 0, p.stderr
    loaded = json.loads(p.stdout)
    assert loaded["entries"] == 4 and loaded["version"] == 1 and loaded["unknown_units"] == []
    listing = run(store_url, "layers", "list")
    assert "access_list" in listing.stdout and "4 entries" in listing.stdout, listing.stdout
    fp = tmp_path / "fp.geojson"
    fp.write_text(json.dumps(shapely.geometry.mapping(FOOTPRINT)))
    p = run(store_url, "screen", fp, "--activity", "光伏", "--json")
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    assert (
        answer["verdict"] == "needs_approval"
        and answer["control_units"][0]["condition"] == "仅限光伏治沙项目，须经审批"
    )
    p = run(store_url, "screen", fp, "--activity", "mining")
    assert p.returncode == 0 and "prohibited" in p.stdout and "ZH15062510001" in p.stdout, p.stdout
    # user mistakes: one line, exit status 2
    for args, fragment in (
        (("screen", fp, "--activity", "volcano"), "unknown activity"),
        (("screen", tmp_path / "none.geojson", "--activity", "mining"), "no such file"),
        (("layers", "load", "access-list", write_csv(tmp_path / "b.csv", [("code", "x")])), "no activity column"),
        (("layers", "load", "volcanoes", units), "unknown layer kind"),
    ):
        p = run(store_url, *args)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        assert p.stderr.startswith("error:") and fragment in p.stderr, p.stderr
