"""Exports, statistics and scan jobs."""

from __future__ import annotations

import io
import shutil
import time
import zipfile

import geopandas as gpd
import pyogrio
import pytest

from .conftest import assert_problem


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "fgb", "parquet", "csv", "kml", "shp"])
def test_export_formats_round_trip(client, auth, tmp_path, fmt):
    r = client.get(f"/exports?format={fmt}", headers=auth("analyst"))
    assert r.status_code == 200, r.text
    path = tmp_path / f"flags.{'zip' if fmt == 'shp' else fmt}"
    path.write_bytes(r.content)
    if fmt == "parquet":
        gdf = gpd.read_parquet(path)
    elif fmt == "csv":
        gdf = pyogrio.read_dataframe(path)
        assert "WKT" in gdf.columns or gdf.geometry is not None
    else:
        gdf = pyogrio.read_dataframe(
            path, driver="KML" if fmt == "kml" else None, layer="flags" if fmt == "gpkg" else None
        )
    assert len(gdf) == 8
    if fmt in ("gpkg", "fgb", "parquet", "shp"):  # typed dates; the permit's own number
        assert str(gdf["first_seen"].dtype).startswith(("datetime64", "date32")), gdf.dtypes
        assert [v for v in gdf["permit_id"] if isinstance(v, str)] == ["内发改能源〔2023〕1186号"]
    if fmt == "shp":
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert "flags.cpg" in names and zipfile.ZipFile(io.BytesIO(r.content)).read("flags.cpg").strip() == b"UTF-8"
        assert all(len(c) <= 10 for c in gdf.columns)
        assert any("生态保护红线" in str(v) for v in gdf["zone_name"])  # Chinese survives the round trip


def test_export_filters_and_cgcs2000(client, auth, tmp_path):
    r = client.get("/exports?format=gpkg&crs=EPSG:4490&severity=critical", headers=auth("analyst"))
    path = tmp_path / "c.gpkg"
    path.write_bytes(r.content)
    gdf = pyogrio.read_dataframe(path, layer="flags")
    assert list(gdf["severity"]) == ["critical"] and gdf.crs.to_epsg() == 4490
    # GeoJSON is RFC 7946: lon/lat on WGS 84 only, no "crs" member
    assert_problem(client.get("/exports?format=geojson&crs=EPSG:4490", headers=auth("analyst")), 422, "RFC 7946")
    r = client.get("/exports?format=geojson&crs=OGC:CRS84&severity=critical", headers=auth("analyst"))
    assert r.status_code == 200 and "crs" not in r.json() and len(r.json()["features"]) == 1
    assert_problem(client.get("/exports?format=xlsx", headers=auth("analyst")), 422)
    assert_problem(client.get("/exports?format=kml&crs=EPSG:4490", headers=auth("analyst")), 422, "KML")
    leftovers = [p for p in shutil.os.listdir(__import__("tempfile").gettempdir()) if p.startswith("redline-export-")]
    assert leftovers == []


@pytest.mark.parametrize(
    "group_by,key",
    [
        ("severity", "severity"),
        ("activity", "activity"),
        ("region", "admin_code"),
        ("zone", "zone_name"),
        ("month", "month"),
    ],
)
def test_stats(client, auth, group_by, key):
    body = client.get(f"/stats?group_by={group_by}", headers=auth("analyst")).json()
    assert body["group_by"] == group_by
    assert sum(g["count"] for g in body["groups"]) == 8
    assert all(key in g and g["area_mu"] == pytest.approx(g["area_ha"] * 15, rel=1e-3) for g in body["groups"])


def test_stats_filtered(client, auth):
    body = client.get("/stats?group_by=severity&status=permitted", headers=auth("analyst")).json()
    assert body["groups"] == [
        {
            "severity": "high",
            "count": 1,
            "area_ha": pytest.approx(20.0, rel=2e-3),
            "area_mu": pytest.approx(300.0, rel=2e-3),
        }
    ]


def _wait(client, headers, location, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.get(location, headers=headers).json()
        if job["state"] in ("successful", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_scan_job_runs_and_reports(client, auth, env, write_raster, class_table):

    h = auth("admin")
    data = env["settings"].data_dir
    # a copy of the June product, altered so its checksum is new: one more mining pit in the core zone
    src = env["out"] / "change_2026-06.tif"
    import rasterio

    with rasterio.open(src) as ds:
        profile, arr = ds.profile, ds.read(1)
    arr[0:5, 0:5] = 0
    with rasterio.open(data / "june_v2.tif", "w", **profile) as dst:
        dst.write(arr, 1)
    body = {
        "product": "june_v2.tif",
        "class_table": "change_classes.csv",
        "acquired_after": "2026-06-21",
        "product_id": "HJ-CHG-2026-06-v2",
    }
    r = client.post("/scans", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.headers["location"].startswith("/jobs/")
    job = _wait(client, h, r.headers["location"])
    assert job["state"] == "successful" and job["progress"] == 100, job
    assert job["result"]["observed_flags"]  # the same places, seen again
    bad = data / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    r = client.post("/scans", json={**body, "product": "corrupt.tif"}, headers=h)
    assert_problem(r, 422, "not a readable raster")


@pytest.mark.parametrize("product", ["../store.db", "/etc/passwd", "sub/../../x.tif"])
def test_scan_paths_outside_data_folder_are_refused(client, auth, product):
    r = client.post("/scans", json={"product": product, "acquired_after": "2026-01-01"}, headers=auth("admin"))
    assert_problem(r, 403, "data folder")


def test_scan_needs_admin(client, auth):
    assert_problem(client.post("/scans", json={"product": "x.tif"}, headers=auth("analyst")), 403)
    assert_problem(client.get("/jobs/nope", headers=auth("viewer")), 404)


def test_scan_job_failure_says_why(client, auth, env):
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    h = auth("admin")
    arr = np.zeros((300, 300), dtype=np.uint8)
    arr[10, 10] = 99  # not in the class table: found while scanning, after the job started
    with rasterio.open(
        env["settings"].data_dir / "odd.tif",
        "w",
        driver="GTiff",
        width=300,
        height=300,
        count=1,
        dtype="uint8",
        crs="EPSG:32649",
        transform=from_origin(300000, 4410000, 10, 10),
    ) as ds:
        ds.write(arr, 1)
    r = client.post(
        "/scans",
        json={"product": "odd.tif", "class_table": "change_classes.csv", "acquired_after": "2026-10-01"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    job = _wait(client, h, r.headers["location"])
    assert job["state"] == "failed" and "99" in job["message"] and "not in" in job["message"]
