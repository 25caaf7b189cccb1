"""Reports (redline/reports): problem sheets and check reports, as PDF and HTML.

The sample scenario is scanned once (SQLite; the API tests run the same reports on PostGIS).
PDFs are read back with pypdf and poppler's pdftotext, maps are checked pixel by pixel.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image
from pypdf import PdfReader

from redline.auth import OPERATOR, Principal
from redline.check import check_region
from redline.errors import InputError, PermissionDeniedError
from redline.evidence import save_evidence
from redline.layers import read_mapping_file
from redline.regions import read_region
from redline.reports import MAX_PACKET, check_report, flag_report, flags_report
from redline.reports.figures import SEVERITY_COLOURS, cjk_fonts, map_figure
from redline.reports.sheet import image_chips
from redline.rules import PROTECTION_LAYERS
from redline.store import FlagFilter, open_store

from .scenario import ROOT, build

REDLINE = str(Path(sys.executable).with_name("redline"))
XIN, YIHE = "150625100", "150625201"
RESERVE = "杭锦旗梭梭林自然保护区"


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    truth, url = build(out)
    store = open_store(url)
    flags = {f["id"]: f for f in store.flags()}
    store.close()
    return {"out": out, "url": url, "truth": truth, "flags": flags}


@pytest.fixture
def store(scenario):
    s = open_store(scenario["url"])
    yield s
    s.close()


def flag_where(scenario, **kw) -> dict:
    return next(f for f in scenario["flags"].values() if all(f[k] == v for k, v in kw.items()))


def pdf_text(data: bytes, tmp_path: Path, name: str = "r.pdf") -> list[str]:
    """The text of each page, in the order it was drawn, by poppler's pdftotext (an independent reader)."""
    path = tmp_path / name
    path.write_bytes(data)
    text = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1] if text.endswith("\f") else text.split("\f")


def pdf_fonts(reader: PdfReader) -> set[str]:
    fonts = set()
    for page in reader.pages:
        for f in (page.get("/Resources") or {}).get("/Font", {}).values():
            fonts.add(str(f.get_object().get("/BaseFont")))
    return fonts


def png_pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])


def assert_self_contained(html: str) -> None:
    assert not re.search(r"https?://", html), "an HTML report must name no server"
    for src in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert src.startswith(("data:", "#")), src
    assert "<script" not in html


# --- figures --------------------------------------------------------------------------


def test_cjk_fonts_are_installed_for_figures():
    assert cjk_fonts(), "no CJK font for matplotlib: Chinese names would be tofu (scripts/provision_reports.sh)"


def test_map_figure_covers_the_patch(store, scenario):
    flag = flag_where(scenario, severity="critical")
    geom = flag["geometry"]
    zones = store.zones(PROTECTION_LAYERS, bbox=geom.buffer(0.01).bounds)
    fig = map_figure(focus=geom, zones=zones, flags=[flag], highlight=geom)
    px = png_pixels(fig.png)
    assert px.shape[:2] == fig.size_px[::-1]
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 20, "the map is blank"
    # the patch is drawn in its severity's colour where it lies on the image
    col, row = fig.pixel(geom.representative_point().x, geom.representative_point().y)
    window = px[row - 2 : row + 3, col - 2 : col + 3].reshape(-1, 3)
    assert (np.abs(window - rgb(SEVERITY_COLOURS["critical"])).sum(axis=1) < 30).any(), window
    # and the map shows the reserve around it: the core zone's green near the patch, inside the axes
    left, top, right, bottom = (int(v) for v in fig.axes_px)
    inside = px[top:bottom, left:right].reshape(-1, 3)
    assert (np.abs(inside - rgb("#2b8a3e")).sum(axis=1) < 60).mean() > 0.05, "the core zone is missing"
    # a small patch still shows: at least some dozens of pixels in its colour
    assert (np.abs(inside - rgb(SEVERITY_COLOURS["critical"])).sum(axis=1) < 30).sum() > 50


# --- problem sheets -------------------------------------------------------------------


def test_problem_sheet_pdf(store, scenario, tmp_path):
    flag = flag_where(scenario, severity="critical")
    data = flag_report(store, flag["id"], "pdf")
    reader = PdfReader(io.BytesIO(data))
    assert 1 <= len(reader.pages) <= 3
    pages = pdf_text(data, tmp_path)
    text = "\n".join(pages)
    assert f"flag #{flag['id']}" in pages[0]
    for expected in (
        RESERVE,
        "锡尼镇",
        "核心区",
        "mining",
        "CGCS2000",
        "Verified by",
        "核查人",
        "Finding",
        "Photos taken",
        flag["first_seen"],
        "HJ-CHG-2026-06",
        "rules 2026.1",
    ):
        assert expected in text, expected
    # the location is the centroid's, in CGCS2000 degrees
    c = flag["geometry"].centroid
    assert f"lon {c.x:.6f}"[:-1] in text and f"lat {c.y:.6f}"[:-1] in text
    # Chinese is drawn with a CJK font embedded in the file (no tofu)
    assert any("CJK" in f for f in pdf_fonts(reader)), pdf_fonts(reader)


def test_problem_sheet_html_is_self_contained(store, scenario):
    flag = flag_where(scenario, activity="construction", severity="high")
    html = flag_report(store, flag["id"], "html").decode()
    assert_self_contained(html)
    assert RESERVE in html and "缓冲区" in html
    assert html.count("data:image/png;base64,") >= 3  # map and the chips of both observations
    assert "2026-09" in html  # the second observation


def test_image_chips_from_the_products_and_when_they_are_gone(store, scenario):
    flag = flag_where(scenario, activity="construction", severity="high")
    obs = store.observations(flag["id"])
    scans = {s["id"]: s for s in store.scans()}
    chips = image_chips(flag, obs, scans)
    assert len(chips) == 2 and all(c.get("src") for c in chips), chips
    # the chip shows the patch: its outline (black) lies on the image
    px = png_pixels(__import__("base64").b64decode(chips[0]["src"].split(",", 1)[1]))
    assert (px.sum(axis=2) < 40).sum() > 50
    gone = {
        i: {**s, "files": [str(scenario["out"] / "gone" / Path(f).name) for f in s["files"]]} for i, s in scans.items()
    }
    chips = image_chips(flag, obs, gone)
    assert chips and all("not available" in c["missing"] for c in chips)
    # a land-cover pair gives a before and an after chip
    pair = flag_where(scenario, activity="farmland", zone_regime="redline", admin_code=XIN)
    chips = image_chips(pair, store.observations(pair["id"]), scans)
    assert [c["title"].split()[0] for c in chips] == ["before", "after"] and all(c.get("src") for c in chips)


def test_image_chips_from_the_imagery_a_product_names(store, scenario, tmp_path):
    """A product whose sidecar names before/after imagery gets chips cut from that imagery: the
    after image painted red where the patch is shows red inside the chip, the before one none."""
    import shutil

    import rasterio
    from rasterio.features import geometry_mask

    from redline.geo import reproject

    flag = flag_where(scenario, activity="construction", severity="high")
    obs = store.observations(flag["id"])
    scans = {s["id"]: s for s in store.scans()}
    first = scans[obs[0]["scan_id"]]
    src = Path(first["files"][-1])
    product = tmp_path / src.name
    shutil.copy(src, product)
    with rasterio.open(src) as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    inside = geometry_mask([reproject(flag["geometry"], "EPSG:4326", crs)], shape, transform, invert=True)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    t = (xx + yy) % 50  # texture, the same in every band: greenish greys once stretched, never red
    before = np.stack([10 + t, 80 + t, 10 + t]).astype(np.uint8)
    after = before.copy()
    after[:, inside] = np.array([250, 10, 10], dtype=np.uint8)[:, None]
    (tmp_path / "img").mkdir()
    for name, arr in (("before", before), ("after", after)):
        profile = dict(driver="GTiff", width=shape[1], height=shape[0], count=3, dtype="uint8", crs=crs)
        with rasterio.open(tmp_path / "img" / f"s2_{name}.tif", "w", transform=transform, **profile) as ds:
            ds.write(arr)
    sidecar = {"imagery_before": "img/s2_before.tif", "imagery_after": "img/s2_after.tif"}
    product.with_suffix(".json").write_text(json.dumps(sidecar))
    named = {**scans, first["id"]: {**first, "files": [str(product)]}}
    chips = image_chips(flag, obs, named)
    imagery = [c for c in chips if c.get("imagery")]
    assert [c["title"].split()[:2] for c in imagery] == [["imagery", "before"], ["imagery", "after"]], chips
    assert all(c.get("src") for c in imagery)

    def red(chip) -> int:
        px = png_pixels(__import__("base64").b64decode(chip["src"].split(",", 1)[1]))
        return int(((px[..., 0] > 200) & (px[..., 1] < 60) & (px[..., 2] < 60)).sum())

    assert red(imagery[1]) > 200 and red(imagery[0]) == 0
    # imagery that is gone is said so; the other products keep their own chips
    (tmp_path / "img" / "s2_after.tif").unlink()
    chips = image_chips(flag, obs, named)
    assert "no longer on disk" in chips[1]["missing"] and chips[0].get("src")
    # without the sidecar fields: the change product's own chip again
    product.with_suffix(".json").write_text(json.dumps({"sensor": "S2"}))
    assert not any(c.get("imagery") for c in image_chips(flag, obs, named))
    # a STAC item (where the nightly batch found the product) names the imagery as assets;
    # within an ItemCollection it is found by id; a remote asset is never fetched
    (tmp_path / "img" / "s2_after.tif").write_bytes((tmp_path / "img" / "s2_before.tif").read_bytes())
    item = {
        "type": "Feature",
        "id": "HJ-CHG-2026-06",
        "assets": {
            "change": {"href": product.name},
            "imagery_before": {"href": "img/s2_before.tif"},
            "imagery_after": {"href": f"file://{tmp_path / 'img' / 's2_after.tif'}"},
        },
    }
    (tmp_path / "item.json").write_text(json.dumps(item))
    (tmp_path / "items.json").write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    for location in (str(tmp_path / "item.json"), f"{tmp_path / 'items.json'}#HJ-CHG-2026-06"):
        chips = image_chips(flag, obs, named, {first["id"]: [location]})
        assert [c["title"].split()[:2] for c in chips if c.get("imagery")] == [
            ["imagery", "before"],
            ["imagery", "after"],
        ]
    item["assets"] = {"imagery_before": {"href": "https://example.invalid/s2.tif"}}
    (tmp_path / "item.json").write_text(json.dumps(item))
    assert not any(
        c.get("imagery") for c in image_chips(flag, obs, named, {first["id"]: [str(tmp_path / "item.json")]})
    )


def test_evidence_photos_on_the_sheet(store, scenario, tmp_path):
    flag = flag_where(scenario, activity="industrial")
    root = tmp_path / "evidence"
    for fmt, colour in (("JPEG", (200, 30, 30)), ("PNG", (30, 30, 200))):
        buf = io.BytesIO()
        Image.new("RGB", (1200, 900), colour).save(buf, fmt)
        buf.seek(0)
        save_evidence(
            store,
            root,
            flag["id"],
            buf,
            original_name=f"site.{fmt.lower()}",
            actor="field team",
            lon=108.5,
            lat=39.8,
            note="挖掘机 excavator on site",
        )
    store.audit(flag["id"], "inspector", "status", {"from": "new", "to": "dispatched", "note": "派出核查"})
    html = flag_report(store, flag["id"], "html", evidence_dir=root).decode()
    assert html.count("data:image/jpeg;base64,") == 2  # both photos, as JPEG thumbnails
    assert "挖掘机 excavator on site" in html and "new → dispatched: 派出核查" in html
    assert_self_contained(html)
    # without the folder the rows are still listed
    html = flag_report(store, flag["id"], "html").decode()
    assert "data:image/jpeg" not in html and "site.jpeg" in html


def test_packet_has_one_sheet_per_flag(store, scenario, tmp_path):
    data = flags_report(store, FlagFilter(status=["new"]), "pdf")
    ids = sorted(i for i, f in scenario["flags"].items() if f["status"] == "new")
    reader = PdfReader(io.BytesIO(data))
    pages = pdf_text(data, tmp_path)
    assert len(reader.pages) == len(pages) >= len(ids)
    # every sheet starts a page with its title, in id order
    starts = [int(m.group(1)) for p in pages if (m := re.match(r"\s*Problem sheet .*flag #(\d+)", p))]
    assert starts == ids
    # and is bookmarked, for the PDF reader's outline
    outline = [o.title for o in reader.outline if not isinstance(o, list)]
    assert [int(re.search(r"#(\d+)", t).group(1)) for t in outline] == ids


def test_jurisdiction_applies_to_sheets_and_packets(store, scenario):
    inspector = Principal("i", "inspector", (YIHE,))
    other = flag_where(scenario, admin_code=XIN)
    with pytest.raises(PermissionDeniedError):
        flag_report(store, other["id"], "html", principal=inspector)
    html = flags_report(store, None, "html", principal=inspector).decode()
    found = {int(i) for i in re.findall(r'id="flag-(\d+)"', html)}
    assert found == {i for i, f in scenario["flags"].items() if f["admin_code"] == YIHE}


def test_packet_size_is_capped(store, monkeypatch):
    import redline.reports as reports

    monkeypatch.setattr(reports, "MAX_PACKET", 2)
    with pytest.raises(InputError, match="narrow the filters"):
        flags_report(store, None, "html")
    assert MAX_PACKET >= 100


# --- the command line -----------------------------------------------------------------


def run(scenario, *args):
    env = {**os.environ, "REDLINE_DATABASE_URL": scenario["url"]}
    return subprocess.run([REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def test_cli_report_flag_and_packet(scenario, tmp_path):
    flag = flag_where(scenario, severity="critical")
    p = run(scenario, "report", "flag", flag["id"], "-o", tmp_path / "sheet.pdf")
    assert p.returncode == 0, p.stderr
    assert PdfReader(tmp_path / "sheet.pdf").pages
    p = run(scenario, "report", "flags", "--severity", "high", "--severity", "critical", "-o", tmp_path / "p.html")
    assert p.returncode == 0, p.stderr
    html = (tmp_path / "p.html").read_text()
    n = sum(1 for f in scenario["flags"].values() if f["severity"] in ("high", "critical"))
    assert html.count('class="sheet"') == n and f"{n} problem sheet" in p.stdout
    for args, fragment in (
        ((flag["id"], "-o", tmp_path / "x.docx"), ".pdf or .html"),
        ((99999, "-o", tmp_path / "x.pdf"), "does not exist"),
    ):
        p = run(scenario, "report", "flag", *args)
        assert p.returncode == 2 and "Traceback" not in p.stderr and fragment in p.stderr, p.stderr
    assert not (tmp_path / "x.pdf").exists()


# --- check reports --------------------------------------------------------------------


def _region(scenario, grow: float = 0.0):
    region = read_region(ROOT / "sample_data" / "check_region.geojson", None)
    return region if not grow else shapely.box(*region.bounds).buffer(grow, join_style="mitre")


def test_check_report_pdf(store, scenario, tmp_path):
    region = _region(scenario)
    answer = check_region(store, region, principal=OPERATOR)
    data = check_report(store, region, answer, "pdf", title="check_region.geojson")
    reader = PdfReader(io.BytesIO(data))
    pages = pdf_text(data, tmp_path)
    assert 2 <= len(reader.pages) <= 4
    text = re.sub(r"\s+", " ", "\n".join(pages))
    squeezed = re.sub(r"\s+", "", text)  # names wrapped in a table cell
    assert "Check report" in pages[0] and "check_region.geojson" in pages[0]
    for z in answer.zones:  # every zone touched, by its Chinese name
        assert z.name in squeezed, z.name
    for expected in (
        "毛乌素沙地生物多样性维护生态保护红线",
        "核心区",
        "HJ-CHG-2026-06",
        "HJ-LC-2025-2026",
        "Sentinel-2 MSI",
        "redline.gpkg",
        "Rules version(s): 2026.1",
        "Zones touched",
        "Imagery coverage",
        "Provenance",
    ):
        assert expected.replace(" ", "") in squeezed, expected
    assert f"{answer.summary.region.ha:,.2f} ha" in text
    assert any("CJK" in f for f in pdf_fonts(reader))


def test_check_report_map_covers_the_region_and_hatches_what_was_not_seen(store, scenario):
    from redline.reports.checkreport import check_context

    # a region reaching beyond the scenes: the part outside every footprint is "not observed"
    region = _region(scenario, grow=0.03)
    answer = check_region(store, region, principal=OPERATOR)
    assert answer.summary.observed_fraction < 0.9
    ctx = check_context(store, region, answer)
    assert "not observed 未观测" in [label for _, label in ctx["map"]["legend"]]
    fig = ctx["figure"]
    assert ctx["map"]["src"] == "data:image/png;base64," + __import__("base64").b64encode(fig.png).decode()
    px = png_pixels(fig.png)
    assert len(np.unique(px.reshape(-1, 3), axis=0)) > 20, "the map is blank"
    # the whole region is on the map
    left, top, right, bottom = fig.axes_px
    for x, y in shapely.get_coordinates(region.exterior):
        col, row = fig.pixel(x, y)
        assert left <= col <= right and top <= row <= bottom
    # every flag of the check is drawn in its severity's colour (a 20 m wide road included)
    geoms = {f["id"]: f["geometry"] for f in store.flags()}
    for f in answer.flags:
        p = geoms[f.id].representative_point()
        col, row = fig.pixel(p.x, p.y)
        window = px[row - 3 : row + 4, col - 3 : col + 4].reshape(-1, 3)
        assert (np.abs(window - rgb(SEVERITY_COLOURS[f.severity])).sum(axis=1) < 40).any(), f.id
    # outside the scenes (the grown margin, left edge) the map is hatched: dark lines on the pale ground
    x0, y0, x1, y1 = region.bounds
    col, row = fig.pixel(x0 + 0.01, (y0 + y1) / 2)
    window = px[row - 8 : row + 9, col - 8 : col + 9].reshape(-1, 3)
    assert (window.sum(axis=1) < 300).any() and (window.sum(axis=1) > 600).any()


def test_check_report_html_is_self_contained(store, scenario):
    region = _region(scenario)
    inspector = Principal("i", "inspector", (YIHE,))
    answer = check_region(store, region, principal=inspector)
    html = check_report(store, region, answer, "html", principal=inspector).decode()
    assert_self_contained(html)
    assert "伊和乌素苏木" in html
    ids = {int(i) for i in re.findall(r'<tr><td class="n">(\d+)</td>', html)}
    assert ids == {f.id for f in answer.flags} and all(scenario["flags"][i]["admin_code"] == YIHE for i in ids)


def test_cli_check_report(scenario, tmp_path):
    region = ROOT / "sample_data" / "check_region.geojson"
    p = run(scenario, "check", region, "--report", tmp_path / "check.pdf")
    assert p.returncode == 0, p.stderr
    assert "wrote" in p.stdout and len(PdfReader(tmp_path / "check.pdf").pages) >= 2
    p = run(scenario, "check", region, "--json", "--report", tmp_path / "check.html")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["summary"]["zones_touched"] >= 1  # stdout stays JSON
    assert_self_contained((tmp_path / "check.html").read_text())
    p = run(scenario, "check", region, "--report", tmp_path / "check.doc")
    assert p.returncode == 2 and ".pdf or .html" in p.stderr


# --- the nightly digest ---------------------------------------------------------------


def _digest(flags: list[dict], observed: list[dict] | None = None) -> dict:
    from redline.digest import _group

    return {
        "run_id": "20261201T000000Z-test",
        "started_at": "2026-12-01T00:00:00+00:00",
        "finished_at": "2026-12-01T00:10:00+00:00",
        "status": "ok",
        "totals": {
            "discovered": 3,
            "unchanged": 0,
            "scanned": 3,
            "already_scanned": 0,
            "failed": 0,
            "known_failures_not_retried": 0,
            "not_settled": 0,
            "new_flags": len(flags),
            "new_observations": len(observed or []),
        },
        "scans": [],
        "failures": [],
        "known_failures": [],
        "not_settled": [],
        "recovery": [],
        "new_flags": _group(flags),
        "new_observations": _group(observed or []),
    }


def test_digest_page_has_map_chart_units_and_critical_first(store, scenario):
    from redline.model import FLAG_BRIEF
    from redline.reports.digestreport import digest_html

    rows = [{k: f[k] for k in FLAG_BRIEF} for f in scenario["flags"].values()]
    html = digest_html(store, _digest(rows), "digest-x.csv")
    assert_self_contained(html.replace('href="digest-x.csv"', ""))
    assert 'href="digest-x.csv"' in html
    assert html.count("data:image/png;base64,") >= 3  # the map, the chart, a chip of the critical flag
    assert "锡尼镇" in html and "伊和乌素苏木" in html and RESERVE in html
    critical = flag_where(scenario, severity="critical")["id"]
    assert html.index(f"flag #{critical}") < html.index("By admin unit")  # critical flags come first


def test_a_large_night_is_summarised_with_the_full_list_in_csv(store, scenario):
    from redline.model import FLAG_BRIEF
    from redline.reports.digestreport import MAX_ROWS, digest_csv, digest_html

    base = next(iter(scenario["flags"].values()))
    rows = [
        {**{k: base[k] for k in FLAG_BRIEF}, "id": 100_000 + i, "severity": ("low", "high")[i % 2]} for i in range(1000)
    ]
    d = _digest(rows)
    html = digest_html(store, d, "digest-big.csv")
    listed = re.findall(r'<tr><td class="n">(\d+)</td>', html)
    assert len(listed) == MAX_ROWS < 1000
    assert f"{1000 - MAX_ROWS} more" in html and 'href="digest-big.csv"' in html
    # the most severe are the ones listed
    assert all(int(i) % 2 == 1 for i in listed)
    text = digest_csv(d)
    assert text.startswith("\ufeff") and len(text.strip().splitlines()) == 1001
    # without a store: the tables, no figures
    assert "data:image" not in digest_html(None, d)


def test_nightly_writes_the_digest_page_and_its_csv(tmp_path):
    from redline.nightly import NightlyOptions, run_nightly

    truth, url = build(tmp_path / "night", scan=False)  # layers loaded, the products wait in the folder
    store = open_store(url)
    try:
        d = run_nightly(store, NightlyOptions(watch=[tmp_path / "night"], digest_dir=tmp_path / "digests", settle=0))
    finally:
        store.close()
    files = {k: Path(v) for k, v in d["files"].items()}
    html = files["html"].read_text()
    assert html == (tmp_path / "digests" / "latest.html").read_text()
    assert_self_contained(html.replace(f'href="{files["csv"].name}"', ""))
    assert f'href="{files["csv"].name}"' in html and files["csv"].exists()
    assert html.count("data:image/png;base64,") >= 3  # the night's map, flags per month, the critical flag's chip
    assert RESERVE in html and "HJ-CHG-2026-06" in html
    rows = files["csv"].read_text(encoding="utf-8-sig").splitlines()
    assert len(rows) == 1 + d["totals"]["new_flags"] + d["totals"]["new_observations"]
    assert rows[0].startswith("kind,id,severity")


# --- screening reports ------------------------------------------------------------------

CONTROL_MAP = read_mapping_file(ROOT / "sample_data" / "mapping.toml", "control")
PRIORITY_UNIT = "库布其沙漠优先保护单元"


@pytest.fixture
def screened(scenario, tmp_path):
    """A copy of the scenario's store with its control units and access list, and a screening
    of a solar farm on the reserve's core zone."""
    import shutil

    from redline.accesslist import read_access_list
    from redline.layers import read_layer
    from redline.rules import load_rules
    from redline.screening import screen

    db = tmp_path / "screen.db"
    shutil.copy(scenario["url"].removeprefix("sqlite:///"), db)
    store = open_store(f"sqlite:///{db}")
    store.add_layer_version(read_layer("control", scenario["out"] / "control_units.gpkg", mapping=CONTROL_MAP))
    store.add_access_list(read_access_list(scenario["out"] / "access_list.csv"))
    core = next(p for p in scenario["truth"]["patches"] if p["name"] == "mining_core")["centroid_lonlat"]
    footprint = shapely.Point(core).buffer(0.002)
    answer = screen(store, footprint, "光伏", load_rules())
    yield {"store": store, "url": f"sqlite:///{db}", "footprint": footprint, "answer": answer}
    store.close()


def test_screening_report_pdf(screened, tmp_path):
    from redline.reports import screening_report

    s = screened
    data = screening_report(s["store"], s["footprint"], s["answer"], "pdf", title="光伏项目.geojson")
    reader = PdfReader(io.BytesIO(data))
    assert 2 <= len(reader.pages) <= 4
    assert any("CJK" in f or "Noto" in f for f in pdf_fonts(reader)), pdf_fonts(reader)
    text = "".join(pdf_text(data, tmp_path)).replace("\n", "")  # table cells wrap Chinese anywhere
    for needle in (
        "选址预审报告",
        PRIORITY_UNIT,
        "ZH15062510001",
        RESERVE,
        "库布其沙漠防风固沙生态保护红线",  # the nearest red line
        "仅限光伏治沙项目",  # the access list's condition
        "准入清单 v1, row 3",
        "≤ 10 km",
    ):
        assert needle in text, needle
    assert "\ufffd" not in text and "□" not in text


def test_screening_maps_show_footprint_units_and_rings(screened):
    from pyproj import Geod

    from redline.reports.figures import FOOTPRINT_STYLE, REGIME_STYLE, RING_COLOUR
    from redline.reports.screenreport import screening_context

    s = screened
    ctx = screening_context(s["store"], s["footprint"], s["answer"])
    detail, overview = ctx["figures"]["detail"], ctx["figures"]["overview"]
    for fig in (detail, overview):
        px = png_pixels(fig.png)
        assert len(np.unique(px.reshape(-1, 3), axis=0)) > 20, "the map is blank"
        c = s["footprint"].centroid
        col, row = fig.pixel(c.x, c.y)
        window = px[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3)
        # the footprint's purple (drawn at 85 %): far from every zone colour, near its own
        assert (np.abs(window - rgb(FOOTPRINT_STYLE[0])).sum(axis=1) < 60).any(), window
    for fig in (detail, overview):
        assert REGIME_STYLE["priority_protection_unit"][2] in [label for _, label in fig.legend]
    # each ring passes where pyproj puts a point that far due south of the footprint's bottom edge
    # (its label sits on the north side)
    px = png_pixels(overview.png)
    bottom = s["footprint"].bounds[1]
    for km in (1, 5, 10):
        lon, lat, _ = Geod(ellps="WGS84").fwd(s["footprint"].centroid.x, bottom, 180, km * 1000)
        col, row = overview.pixel(lon, lat)
        window = px[row - 4 : row + 5, col - 4 : col + 5].reshape(-1, 3)
        assert (np.abs(window - rgb(RING_COLOUR)).sum(axis=1) < 60).any(), km
    left, top_px, right, bottom = (int(v) for v in overview.axes_px)
    inside = px[top_px:bottom, left:right].reshape(-1, 3)
    unit_face = rgb(REGIME_STYLE["priority_protection_unit"][0])
    assert (np.abs(inside - (0.45 * unit_face + 0.55 * rgb("#f8f9fa"))).sum(axis=1) < 40).mean() > 0.02


def test_cli_screen_report(screened, tmp_path):
    fp = tmp_path / "fp.geojson"
    fp.write_text(json.dumps(shapely.geometry.mapping(screened["footprint"])))
    env = {**os.environ, "REDLINE_DATABASE_URL": screened["url"]}

    def screen_cli(*args):
        cmd = [REDLINE, "screen", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)

    p = screen_cli(fp, "--activity", "solar", "--report", tmp_path / "s.pdf")
    assert p.returncode == 0, p.stderr
    # the reserve's core zone prohibits it; the unit's list would want an approval
    assert "wrote" in p.stdout and "prohibited" in p.stdout and "needs_approval" in p.stdout, p.stdout
    assert "ZH15062510001" in p.stdout
    assert len(PdfReader(tmp_path / "s.pdf").pages) >= 2
    p = screen_cli(fp, "--activity", "光伏", "--json", "--report", tmp_path / "s.html")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["control_units"][0]["code"] == "ZH15062510001"  # stdout stays JSON
    html = (tmp_path / "s.html").read_text()
    assert_self_contained(html)
    assert PRIORITY_UNIT in html
    p = screen_cli(fp, "--activity", "mining", "--report", tmp_path / "s.doc")
    assert p.returncode == 2 and ".pdf or .html" in p.stderr and "Traceback" not in p.stderr


def magenta_share(png: bytes, axes_px=None) -> float:
    """How much of a map (within ``axes_px``, else all of it) shows the tile server's magenta,
    as it is or under a translucent zone (no colour of the maps' own is that purple)."""
    px = png_pixels(png)
    if axes_px is not None:
        left, top, right, bottom = (int(v) for v in axes_px)
        px = px[top:bottom, left:right]
    rgb = px.reshape(-1, 3)
    return float((np.minimum(rgb[:, 0], rgb[:, 2]) - rgb[:, 1] > 55).mean())


def test_screening_maps_draw_a_basemap_from_a_local_tile_server(screened, tile_server):
    """REDLINE_BASEMAP_URL: tiles from an XYZ server (here a local one serving magenta tiles)
    under the maps; a dead server leaves the maps as they are; only http(s) templates pass."""
    from pydantic import ValidationError

    from redline.config import Settings
    from redline.reports.basemap import MAX_TILES
    from redline.reports.screenreport import screening_context

    s = screened
    url, asked = tile_server.url, tile_server.asked
    with_map = screening_context(s["store"], s["footprint"], s["answer"], basemap_url=url)["figures"]
    tile_server.stop()
    assert 1 <= len(asked) <= 2 * MAX_TILES and all(p.endswith(".png") for p in asked)  # two maps
    overview = with_map["overview"]
    assert magenta_share(overview.png, overview.axes_px) > 0.05  # outside the zones the basemap shows
    plain = screening_context(s["store"], s["footprint"], s["answer"])["figures"]["overview"]
    assert magenta_share(plain.png, plain.axes_px) < 0.001  # a stray edge pixel at most
    dead = screening_context(s["store"], s["footprint"], s["answer"], basemap_url=url)["figures"]["overview"]
    assert magenta_share(dead.png, dead.axes_px) < 0.001  # the server is gone
    with pytest.raises(ValidationError, match="basemap URL"):
        Settings(basemap_url="file:///etc/passwd?{z}{x}{y}")
    assert Settings().basemap_url is None


def test_check_sheet_and_digest_maps_draw_the_basemap_only_when_set(store, scenario, tile_server):
    """The check report's, the problem sheet's (one or a packet) and the digest's maps: tile_server
    are asked for and drawn under the map with the setting, nothing is asked without it."""
    import base64

    from redline.model import FLAG_BRIEF
    from redline.reports.basemap import MAX_TILES
    from redline.reports.digestreport import digest_html

    region = _region(scenario)
    answer = check_region(store, region, principal=OPERATOR)
    flag = flag_where(scenario, severity="critical")
    packet = FlagFilter(severity=["critical"])
    n_packet = store.count_flags(packet)
    digest = _digest([{k: f[k] for k in FLAG_BRIEF} for f in scenario["flags"].values()])
    reports = {
        "check": lambda **kw: check_report(store, region, answer, "html", **kw).decode(),
        "sheet": lambda **kw: flag_report(store, flag["id"], "html", **kw).decode(),
        "packet": lambda **kw: flags_report(store, packet, "html", **kw).decode(),
        "digest": lambda **kw: digest_html(store, digest, **kw),
    }
    maps_of = {"check": 1, "sheet": 1, "packet": n_packet, "digest": 1}

    def maps(html: str) -> list[bytes]:
        return [base64.b64decode(m) for m in re.findall(r'<img class="map" src="data:image/png;base64,([^"]+)"', html)]

    for name, report in reports.items():
        html = report()
        assert tile_server.asked == [], name  # off by default: nothing is fetched
        assert "basemap 底图" not in html and all(magenta_share(png) < 0.001 for png in maps(html)), name

        html = report(basemap_url=tile_server.url)
        asked, pngs = list(tile_server.asked), maps(html)
        tile_server.asked.clear()
        assert len(pngs) == maps_of[name] and 1 <= len(asked) <= MAX_TILES * len(pngs), (name, len(asked))
        assert all(re.fullmatch(r"/\d+/\d+/\d+\.png", p) for p in asked), asked
        assert "basemap 底图" in html, name  # in the map's legend
        assert all(magenta_share(png) > 0.02 for png in pngs), (name, [magenta_share(png) for png in pngs])


def test_cli_reports_take_the_basemap_setting(scenario, tile_server, tmp_path):
    # REDLINE_BASEMAP_URL reaches the check report and the problem sheet made from the command line
    env = {**os.environ, "REDLINE_DATABASE_URL": scenario["url"], "REDLINE_BASEMAP_URL": tile_server.url}
    flag = flag_where(scenario, severity="critical")
    for args in (
        ("check", ROOT / "sample_data" / "check_region.geojson", "--report", tmp_path / "check.html"),
        ("report", "flag", flag["id"], "-o", tmp_path / "sheet.html"),
    ):
        before = len(tile_server.asked)
        p = subprocess.run([REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
        assert len(tile_server.asked) > before, f"no tile asked for by {args[0]}"
        assert "底图" in (tmp_path / args[-1]).read_text()  # the legend names the basemap
