"""POST /screenings with control units and their access list, activity synonyms, and the
screening report (?f=pdf|html), on both stores (the sample scenario's control units)."""

from __future__ import annotations

import io
import re
import subprocess

import pytest
import shapely
import shapely.geometry
from pypdf import PdfReader

from redline.accesslist import read_access_list
from redline.layers import read_layer, read_mapping_file
from redline.model import ScreeningAnswer
from redline.store import open_store

from ..scenario import ROOT
from .conftest import assert_problem

UNIT_MAP = read_mapping_file(ROOT / "sample_data" / "mapping.toml", "control")
PRIORITY = ("ZH15062510001", "库布其沙漠优先保护单元")


@pytest.fixture(scope="module")
def units(env):
    """The scenario's control units and access list, loaded into this module's store."""
    store = open_store(env["url"])
    try:
        store.add_layer_version(read_layer("control", env["out"] / "control_units.gpkg", mapping=UNIT_MAP))
        store.add_access_list(read_access_list(env["out"] / "access_list.csv"))
    finally:
        store.close()
    return env


def footprint(env, patch: str = "mining_core", r: float = 0.001) -> dict:
    centre = next(p for p in env["truth"]["patches"] if p["name"] == patch)["centroid_lonlat"]
    return shapely.geometry.mapping(shapely.Point(centre).buffer(r))


@pytest.mark.parametrize("word", ["光伏", "solar", "Solar", "pv", "energy"])
def test_the_api_takes_the_cli_activity_words(client, auth, units, word):
    r = client.post("/screenings", json={"footprint": footprint(units), "activity": word}, headers=auth("inspector"))
    assert r.status_code == 200, r.text
    a = ScreeningAnswer.model_validate(r.json())
    assert a.activity == "energy"
    (unit,) = a.control_units
    assert unit.verdict == "needs_approval" and unit.entry is not None and unit.entry.row == 3
    assert unit.condition and "光伏治沙" in unit.condition


def test_unknown_activity_words_are_422(client, auth, units):
    r = client.post("/screenings", json={"footprint": footprint(units), "activity": "volcano"}, headers=auth("viewer"))
    assert_problem(r, 422)
    # the flag filters share the type: a synonym works there too, an unknown word is refused
    assert client.get("/stats", params={"activity": "道路"}, headers=auth("admin")).status_code == 200
    assert_problem(client.get("/stats", params={"activity": "volcano"}, headers=auth("admin")), 422)


def test_prohibited_in_the_priority_unit_with_the_entry_cited(client, auth, units):
    r = client.post("/screenings", json={"footprint": footprint(units), "activity": "采矿"}, headers=auth("inspector"))
    a = r.json()
    assert a["verdict"] == "prohibited"
    unit = a["control_units"][0]
    assert (unit["code"], unit["name"], unit["verdict"]) == (*PRIORITY, "prohibited")
    assert unit["entry"]["row"] == 2 and unit["entry"]["list_version"] == 1 and unit["entry"]["activity_text"] == "采矿"
    assert a["zones"][0]["regime"] == "core" and a["zones"][0]["overlap_geometry"]["type"] == "Polygon"
    assert a["nearest_reserve"]["distance_m"] == 0 and a["nearest_redline"]["distance_m"] > 0
    assert [r["km"] for r in a["rings"]] == [1, 5, 10] and a["proximity"][0]["distance_m"] == 0
    # a farm in the general control unit is allowed by its list, so clear
    farm = client.post(
        "/screenings",
        json={"footprint": footprint(units, "tourism_outside"), "activity": "耕地"},
        headers=auth("inspector"),
    )
    assert farm.status_code == 200, farm.text
    general = [u for u in farm.json()["control_units"] if u["code"] == "ZH15062530001"]
    assert general and general[0]["verdict"] == "clear" and general[0]["entry"]["decision"] == "allowed"


def test_screening_report_pdf_and_html(client, auth, units, tmp_path):
    body = {"footprint": footprint(units), "activity": "光伏"}
    r = client.post("/screenings?f=pdf", json=body, headers=auth("inspector"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(r.content))
    assert len(reader.pages) >= 2
    (tmp_path / "s.pdf").write_bytes(r.content)
    text = subprocess.run(["pdftotext", "-raw", str(tmp_path / "s.pdf"), "-"], capture_output=True, text=True).stdout
    text = text.replace("\n", "")  # table cells wrap Chinese names anywhere
    for needle in (*PRIORITY, "杭锦旗梭梭林自然保护区", "选址预审报告", "需审批", "仅限光伏治沙项目"):
        assert needle in text, needle
    h = client.post("/screenings?f=html", json=body, headers=auth("inspector"))
    assert h.status_code == 200 and h.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in h.headers["content-security-policy"]
    assert not re.search(r"https?://", h.text) and "<script" not in h.text
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', h.text))
    assert_problem(client.post("/screenings?f=docx", json=body, headers=auth("inspector")), 422)
