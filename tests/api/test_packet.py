"""GET /packet: a field packet for inspectors, limited to their jurisdiction, built in a worker."""

from __future__ import annotations

import io
import json
import zipfile

import pyogrio

from .conftest import XIN, YIHE, assert_problem


def _open(response, tmp_path) -> tuple[dict, zipfile.ZipFile]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "redline-packet.zip" in response.headers["content-disposition"]
    z = zipfile.ZipFile(io.BytesIO(response.content))
    z.extractall(tmp_path)
    return json.loads(z.read("manifest.json")), z


def test_an_inspector_packet_holds_only_the_jurisdiction(client, auth, env, tmp_path):
    from redline.store import FlagFilter, open_store

    store = open_store(env["url"])
    try:
        xin = sorted(f["id"] for f in store.flags(FlagFilter(admin_code=[XIN]), with_geometry=False))
        yihe = sorted(f["id"] for f in store.flags(FlagFilter(admin_code=[YIHE]), with_geometry=False))
    finally:
        store.close()
    assert xin and yihe
    # the YIHE inspector asks for everything: gets YIHE's flags, with the problem sheets
    manifest, z = _open(client.get("/packet?sheets=true", headers=auth("inspector_yihe")), tmp_path / "yihe")
    assert manifest["flag_ids"] == yihe and manifest["by"]["jurisdiction"] == [YIHE]
    assert manifest["filters"]["admin_code"] == [YIHE]
    flags = pyogrio.read_dataframe(tmp_path / "yihe" / "flags.gpkg", layer="flags")
    assert set(flags["admin_code"]) == {YIHE} and sorted(flags["id"]) == yihe
    kml = pyogrio.read_dataframe(tmp_path / "yihe" / "flags.kml")
    gpx = pyogrio.read_dataframe(tmp_path / "yihe" / "flags.gpx", layer="waypoints")
    assert len(kml) == len(gpx) == len(yihe) and sorted(gpx["name"]) == sorted(f"#{i}" for i in yihe)
    if manifest["problem_sheets"]["included"]:
        assert z.read("problem-sheets.pdf").startswith(b"%PDF")
    # the XIN inspector, filtered by severity: XIN's flags of that severity only
    manifest, _ = _open(
        client.get("/packet?severity=high&severity=critical", headers=auth("inspector")), tmp_path / "x"
    )
    assert manifest["problem_sheets"] == {"included": False, "reason": "left out on request"}  # the default
    got = pyogrio.read_dataframe(tmp_path / "x" / "flags.gpkg", layer="flags")
    assert set(got["admin_code"]) == {XIN} and set(got["severity"]) <= {"high", "critical"}
    assert set(manifest["flag_ids"]) < set(xin)
    # an admin gets both townships; the sheets of more flags than the API prints are left out, said why
    manifest, z = _open(client.get("/packet?sheets=true", headers=auth("admin")), tmp_path / "all")
    assert set(manifest["flag_ids"]) >= set(xin) | set(yihe)
    assert len(manifest["flag_ids"]) > env["settings"].packet_max_sheets
    assert manifest["problem_sheets"]["included"] is False
    assert "at most 5" in manifest["problem_sheets"]["reason"] and "problem-sheets.pdf" not in z.namelist()
    assert "at most 5" in z.read("README.txt").decode()


def test_packet_refusals_are_problems(client, auth):
    assert_problem(client.get(f"/packet?admin={XIN}", headers=auth("inspector_yihe")), 403, "outside your jurisdiction")
    assert_problem(client.get("/packet", headers=auth("analyst")), 403)
    assert_problem(client.get("/packet", headers=auth("viewer")), 403)
    assert_problem(client.get("/packet?bbox=0,0,1,1", headers=auth("admin")), 422, "no flags match")
    assert_problem(client.get("/packet?bbox=1,2", headers=auth("admin")), 422)
    assert_problem(client.get("/packet?sheets=maybe", headers=auth("admin")), 422)
