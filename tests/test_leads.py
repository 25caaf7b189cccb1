"""National leads (线索): import (idempotent, matched to existing flags), results written back,
hostile lead files refused with one clear error; on both stores."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import openpyxl
import pyogrio
import pytest
import shapely
from typer.testing import CliRunner

from redline.auth import OPERATOR
from redline.cli import app
from redline.errors import InputError, TooLargeError
from redline.export import flags_frame
from redline.ledger import ledger_rows
from redline.store import FlagFilter, open_store
from redline.workflow import flag_detail, move

from .conftest import BACKENDS, backend_url
from .scenario import build

SAMPLE_IDS = ["XS-2026-0001", "XS-2026-0002", "XS-2026-0003"]
HEADER = ["线索编号", "行政区", "活动类型", "发现日期", "经度", "纬度", "备注"]


@pytest.fixture(scope="module", params=BACKENDS)
def scenario(request, tmp_path_factory):
    """The sample scenario scanned into a store of each backend (shared by this module's tests:
    each test uses its own batch ids)."""
    out = tmp_path_factory.mktemp("leads")
    truth, url = build(out, url=backend_url(request, request.param, out))
    return {"out": out, "url": url, "truth": truth}


@pytest.fixture
def store(scenario):
    s = open_store(scenario["url"])
    yield s
    s.close()


def cli(url, *args):
    return CliRunner().invoke(app, ["--db", url, *map(str, args)])


def farmland_flag(store) -> dict:
    return next(
        f for f in store.flags(with_geometry=False) if f["activity"] == "farmland" and f["zone_layer"] == "redline"
    )


def counts(store) -> tuple[int, int]:
    flags = store.flags(with_geometry=False)
    return len(flags), sum(f["n_observations"] for f in flags)


def test_the_sample_lead_file_imports_once_and_observes_the_scanned_flag(scenario, store):
    url, leads = scenario["url"], scenario["out"] / "national_leads.csv"
    assert [lead["lead_id"] for lead in scenario["truth"]["leads"]["leads"]] == SAMPLE_IDS
    farmland = farmland_flag(store)
    before = counts(store)
    r = cli(url, "leads", "import", leads, "--batch", "2026-07", "--json")
    assert r.exit_code == 0, r.output
    done = json.loads(r.output)
    assert (done["leads"], len(done["new_flags"]), done["observed_flags"], done["unchanged"]) == (
        3,
        2,
        [farmland["id"]],
        0,
    )
    assert done["outside"] == []
    after = counts(store)
    assert after == (before[0] + 2, before[1] + 3)
    # the overlapping lead is an observation of the scanned flag, with its source and no scan
    detail = flag_detail(store, farmland["id"], OPERATOR)
    assert detail.source == "scan" and detail.n_observations == farmland["n_observations"] + 1
    lead_obs = [o for o in detail.observations if o.source == "national"]
    assert [(o.source_ref, o.scan_id, o.product_id) for o in lead_obs] == [("XS-2026-0001", None, None)]
    # the others are new flags with source national, judged against the red lines
    new = [store.flag(i) for i in done["new_flags"]]
    assert sorted(f["source_ref"] for f in new) == SAMPLE_IDS[1:]
    assert {f["source"] for f in new} == {"national"}
    assert {f["zone_layer"] for f in new} == {"redline"} and all(f["severity"] and f["admin_code"] for f in new)
    assert sorted(f["activity"] for f in new) == ["construction", "mining"]
    assert all(f["geometry"].geom_type == "Polygon" and 0.2 < f["area_ha"] < 0.35 for f in new)  # 30 m around
    assert {h["action"] for f in new for h in store.history(f["id"])} == {"created"}
    # the same file again, and the same file with rows reordered: nothing changes
    r = cli(url, "leads", "import", leads, "--batch", "2026-07", "--json")
    assert r.exit_code == 0, r.output
    again = json.loads(r.output)
    assert (again["new_flags"], again["observed_flags"], again["unchanged"]) == ([], [], 3)
    assert counts(store) == after
    assert len(store.leads("2026-07")) == 3
    # source everywhere: stats, exports, the CQL2 filter, the ledger
    by_source = {g["source"]: g["count"] for g in store.stats("source")}
    assert by_source["national"] >= 2 and by_source["scan"] == before[0]
    frame = flags_frame(store, FlagFilter(cql=_cql("source = 'national'")))
    assert set(frame["source_ref"]) >= set(SAMPLE_IDS[1:]) and set(frame["source"]) == {"national"}
    fid = done["new_flags"][0]
    move(store, fid, "dispatched", "insp")
    move(store, fid, "verified_violation", "insp", "sand pit confirmed")
    assert [r["source"] for r in ledger_rows(store, OPERATOR) if r["id"] == fid] == ["national"]


def _cql(text):
    from redline.cql import parse

    return parse(text, "cql2-text", "flags")


def test_results_export_round_trips_the_batch_ids_and_columns(scenario, store, tmp_path):
    url = scenario["url"]
    rows = [
        ["XS-9-01", "杭锦旗", "采矿", "2026-08-01", "108.70", "39.85", "甲"],
        ["XS-9-02", "杭锦旗", "旅游", "2026-08-02", "108.73", "39.86", "乙"],
    ]
    src = tmp_path / "batch9.csv"
    with src.open("w", newline="", encoding="utf-8-sig") as f:
        csv.writer(f).writerows([HEADER, *rows])
    r = cli(url, "leads", "import", src, "--batch", "B9", "--json")
    assert r.exit_code == 0, r.output
    leads = store.leads("B9")
    assert [lead["lead_id"] for lead in leads] == ["XS-9-01", "XS-9-02"]
    first = leads[0]["flag_id"]
    if store.flag(first)["status"] == "new":
        move(store, first, "dispatched", "insp")
        move(store, first, "false_positive", "insp", "a sheep pen")
    for suffix in (".xlsx", ".csv", ".gpkg", ".zip"):
        out = tmp_path / f"results{suffix}"
        r = cli(url, "leads", "export", "--batch", "B9", "-o", out)
        assert r.exit_code == 0, r.output
        if suffix == ".xlsx":
            ws = openpyxl.load_workbook(out).active
            table = [[c.value for c in row] for row in ws.iter_rows()]
        elif suffix == ".csv":
            with out.open(encoding="utf-8-sig", newline="") as f:
                table = list(csv.reader(f))
        else:
            gdf = gpd.read_file(out if suffix == ".gpkg" else f"zip://{out}")
            assert gdf.crs.to_epsg() == 4490  # the CRS the leads came in
            assert shapely.Point(108.70, 39.85).distance(gdf.geometry.iloc[0]) < 1e-6
            names = list(gdf.columns.drop("geometry"))
            if suffix == ".zip":  # dBASE names are short: the archive's columns.csv has the full ones
                with zipfile.ZipFile(out) as z:
                    full = dict(csv.reader(z.read("columns.csv").decode("utf-8-sig").splitlines()[1:]))
                assert len(set(full)) == len(full) and all(len(k.encode()) <= 10 for k in full)
                names = [full[n] for n in names]
            table = [names, *gdf.drop(columns="geometry").values.tolist()]
        header = [str(h) for h in table[0]]
        assert header[: len(HEADER)] == HEADER, suffix
        assert header[len(HEADER) :] == ["flag_id", "status", "finding", "note", "verified", "deadline", "closed_on"]
        got = {str(r[0]): dict(zip(header, r)) for r in table[1:]}
        assert list(got) == ["XS-9-01", "XS-9-02"], suffix
        assert str(got["XS-9-01"]["备注"]) == "甲" and str(got["XS-9-02"]["活动类型"]) == "旅游"
        assert int(got["XS-9-01"]["flag_id"]) == first
        status = store.flag(first)["status"]
        assert got["XS-9-01"]["status"] == status
        if status == "false_positive":
            assert (got["XS-9-01"]["finding"], got["XS-9-01"]["note"]) == ("false positive", "a sheep pen")
            assert str(got["XS-9-01"]["verified"])[:2] == "20"
    assert cli(url, "leads", "export", "--batch", "nope", "-o", tmp_path / "x.xlsx").exit_code != 0


def test_xlsx_and_geopackage_leads_with_a_column_mapping(scenario, store, tmp_path):
    url = scenario["url"]
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Clue No", "Kind", "Seen", "X", "Y", "Extra"])
    ws.append(["C-1", "solar", "2026-08-03", 108.71, 39.84, 7])
    wb.save(tmp_path / "leads.xlsx")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"lead_id": "Clue No", "activity": "Kind", "date": "Seen", "lon": "X", "lat": "Y"}))
    r = cli(url, "leads", "import", tmp_path / "leads.xlsx", "--batch", "X1", "--mapping", mapping, "--json")
    assert r.exit_code == 0, r.output
    (lead,) = store.leads("X1")
    assert lead["attrs"] == {
        "Clue No": "C-1",
        "Kind": "solar",
        "Seen": "2026-08-03",
        "X": 108.71,
        "Y": 39.84,
        "Extra": 7,
    }
    flag = store.flag(lead["flag_id"])
    assert flag["activity"] == "energy" and flag["first_seen"] <= "2026-08-03" <= flag["last_seen"]
    # without the mapping the lead id column is not found: one clear error
    r = cli(url, "leads", "import", tmp_path / "leads.xlsx", "--batch", "X2")
    assert isinstance(r.exception, InputError) and "no lead id column" in str(r.exception)
    # a GeoPackage of polygons, in UTM, with Chinese field names
    poly = shapely.box(108.695, 39.835, 108.698, 39.837)
    gdf = gpd.GeoDataFrame({"图斑编号": ["T-1"], "活动类型": ["道路"]}, geometry=[poly], crs="EPSG:4326").to_crs(
        "EPSG:32649"
    )
    gdf.to_file(tmp_path / "leads.gpkg", driver="GPKG")
    r = cli(url, "leads", "import", tmp_path / "leads.gpkg", "--batch", "G1", "--json")
    assert r.exit_code == 0, r.output
    (lead,) = store.leads("G1")
    assert lead["lead_id"] == "T-1" and lead["source_format"] == "gpkg" and "32649" in lead["source_crs"]
    flag = store.flag(lead["flag_id"])
    assert flag["activity"] == "transport"
    if flag["source"] == "national":  # a new flag holds the lead's polygon
        assert flag["geometry"].symmetric_difference(poly).area < 1e-4 * poly.area
    out = tmp_path / "g1.gpkg"
    assert cli(url, "leads", "export", "--batch", "G1", "-o", out).exit_code == 0
    back = pyogrio.read_dataframe(out)
    assert list(back["图斑编号"]) == ["T-1"] and back.crs.to_epsg() == 32649


def _zip(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_hostile_lead_files_are_one_clear_error(scenario, store, tmp_path):
    url = scenario["url"]
    before = counts(store)
    bad = tmp_path / "bad.xlsx"
    _zip(bad, {"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "not xml at all"})
    bomb = tmp_path / "bomb.xlsx"
    _zip(bomb, {"[Content_Types].xml": "<Types/>", "xl/worksheets/sheet1.xml": b"\0" * (40 << 20)})
    vrt = (
        '<OGRVRTDataSource><OGRVRTLayer name="x">'
        "<SrcDataSource>/etc/passwd</SrcDataSource></OGRVRTLayer></OGRVRTDataSource>"
    )
    (tmp_path / "leads.gpkg.vrt").write_text(vrt)
    disguised = tmp_path / "vrt.gpkg"
    disguised.write_text(vrt)
    as_csv = tmp_path / "vrt.csv"
    as_csv.write_text(vrt)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500)
    nan = tmp_path / "nan.csv"
    nan.write_text("线索编号,经度,纬度\nA,nan,39.8\n")
    dup = tmp_path / "dup.csv"
    dup.write_text("线索编号,经度,纬度\nA,108.7,39.8\nA,108.7,39.8\n")
    cases = {
        bad: (InputError, "not a readable XLSX"),
        bomb: (TooLargeError, "expands"),
        disguised: (InputError, "XML that is not KML"),
        as_csv: (InputError, "XML that is not KML"),
        xls: (InputError, "save it as .xlsx"),
        nan: (InputError, "not finite"),
        dup: (InputError, "appears twice"),
    }
    for path, (kind, words) in cases.items():
        r = cli(url, "leads", "import", path, "--batch", "H")
        assert isinstance(r.exception, kind) and words in str(r.exception), (path.name, r.exception)
    assert counts(store) == before and store.leads("H") == []
    # through the real entry point: one line on stderr, exit status 2, no traceback
    p = subprocess.run(
        [str(Path(sys.executable).parent / "redline"), "--db", url, "leads", "import", str(bomb), "--batch", "H"],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "expands" in p.stderr
