"""POST /checks and POST /screenings."""

from __future__ import annotations

import io
import json
import zipfile

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import shapely

from .conftest import XIN, YIHE, assert_problem

REGION = json.loads(open(__file__.rsplit("/tests/", 1)[0] + "/sample_data/check_region.geojson").read())
GEOM = REGION["features"][0]["geometry"]


def test_check_geojson_geometry_feature_and_collection(client, auth):
    answers = [
        client.post("/checks", json=body, headers=auth("inspector")).json()
        for body in (GEOM, REGION["features"][0], REGION)
    ]
    assert answers[0] == answers[1] == answers[2]
    a = answers[0]
    # the inspector of 锡尼镇 sees its 6 conflicts, not the farmland flag of 伊和乌素苏木
    assert a["summary"]["conflicts"] == 6 and a["summary"]["scans"] == 3
    assert {f["admin_code"] for f in a["flags"]} == {XIN}
    everyone = client.post("/checks", json=GEOM, headers=auth("admin")).json()
    assert everyone["summary"]["conflicts"] == 7 and YIHE in {f["admin_code"] for f in everyone["flags"]}
    other = client.post("/checks", json=GEOM, headers=auth("inspector_yihe")).json()
    assert {f["admin_code"] for f in other["flags"]} == {YIHE}
    # conflict area: the flagged ground inside the region, never more than the region
    assert 0 < a["summary"]["conflict_area"]["ha"] < everyone["summary"]["conflict_area"]["ha"]
    assert everyone["summary"]["conflict_area"]["ha"] <= everyone["summary"]["region"]["ha"]
    assert a["summary"]["last_observed"] == "2026-09-18"
    assert {z["regime"] for z in a["zones"]} == {"redline", "core", "buffer", "experimental"}
    for z in a["zones"]:
        assert z["overlap"]["mu"] == pytest.approx(z["overlap"]["ha"] * 15, rel=1e-3)
    assert {"severity", "activity", "status", "first_seen", "last_seen"} <= set(a["flags"][0])


def test_check_period_and_not_observed(client, auth):
    a = client.post("/checks?datetime=2020-01-01/2020-12-31", json=GEOM, headers=auth("viewer")).json()
    assert a["summary"]["scans"] == 0 and a["summary"]["observed_fraction"] == 0.0
    assert a["summary"]["flags"] == 0 and a["summary"]["last_observed"] is None
    assert all(z["observed_fraction"] == 0.0 for z in a["zones"])


def test_check_in_cgcs2000(client, auth):
    a = client.post("/checks?crs=EPSG:4490", json=GEOM, headers=auth("viewer")).json()
    b = client.post("/checks", json=GEOM, headers=auth("viewer")).json()
    assert a["summary"]["region"]["ha"] == pytest.approx(b["summary"]["region"]["ha"], rel=1e-6)


def _region_frame():
    return gpd.GeoDataFrame({"name": ["area"]}, geometry=[shapely.geometry.shape(GEOM)], crs=4326)


@pytest.mark.parametrize("fmt", ["gpkg", "kml", "shpzip", "geojson"])
def test_check_uploaded_file(client, auth, tmp_path, fmt):
    gdf = _region_frame()
    if fmt == "shpzip":
        gdf.to_crs(32649).to_file(tmp_path / "r.shp")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in tmp_path.glob("r.*"):
                z.write(f, f.name)
        name, data = "region.zip", buf.getvalue()
    else:
        path = tmp_path / f"region.{fmt}"
        driver = {"gpkg": "GPKG", "kml": "KML", "geojson": "GeoJSON"}[fmt]
        pyogrio.write_dataframe(gdf.to_crs(4490) if fmt == "gpkg" else gdf, path, driver=driver)
        name, data = path.name, path.read_bytes()
    a = client.post("/checks", files={"file": (name, data)}, headers=auth("admin")).json()
    assert a["summary"]["conflicts"] == 7, a


def test_check_bad_input(client, auth):
    h = auth("inspector")
    utm = {
        "type": "Polygon",
        "coordinates": [[[300000, 4410000], [301000, 4410000], [301000, 4411000], [300000, 4410000]]],
    }
    assert_problem(client.post("/checks", json=utm, headers=h), 422, "not longitude/latitude")
    assert client.post("/checks?crs=EPSG:32649", json=utm, headers=h).status_code == 200
    assert_problem(client.post("/checks", json={"type": "Polygon", "coordinates": "x"}, headers=h), 422, "GeoJSON")
    assert_problem(
        client.post("/checks", json={"type": "Point", "coordinates": [108.7, 39.8]}, headers=h), 422, "no polygon"
    )
    assert_problem(
        client.post("/checks", content=b"{not json", headers={**h, "content-type": "application/json"}),
        422,
        "not valid JSON",
    )
    assert_problem(client.post("/checks", content=b"x", headers={**h, "content-type": "text/plain"}), 422)
    assert_problem(client.post("/checks?crs=EPSG:99999", json=GEOM, headers=h), 422, "unknown CRS")
    assert_problem(client.post("/checks", files={"file": ("r.exe", b"MZ")}, headers=h), 422, "r.exe: unsupported file")
    assert_problem(client.post("/checks", files={"file": ("r.gpkg", b"garbage")}, headers=h), 422, "unsupported file")


def test_check_limits(client, auth):
    h = auth("inspector")
    t = np.linspace(0, 2 * np.pi, 80_000)  # 80k vertices > the 50k limit
    circle = shapely.Polygon(np.column_stack([108.7 + 0.05 * np.cos(t), 39.85 + 0.05 * np.sin(t)]))
    assert_problem(client.post("/checks", json=shapely.geometry.mapping(circle), headers=h), 413, "vertices")
    many = {"type": "FeatureCollection", "features": [REGION["features"][0]] * 10_001}
    assert client.post("/checks", json=many, headers=h).status_code == 413
    huge = b"{" + b" " * 6_000_000 + b"}"
    assert_problem(client.post("/checks", content=huge, headers={**h, "content-type": "application/json"}), 413)


def test_screening_verdicts(client, auth, env):
    h = auth("inspector")
    truth = env["truth"]
    core = next(p for p in truth["patches"] if p["name"] == "mining_core")["centroid_lonlat"]
    box = shapely.geometry.mapping(shapely.Point(core).buffer(0.001))
    a = client.post("/screenings", json={"footprint": box, "activity": "mining"}, headers=h).json()
    assert a["verdict"] == "prohibited" and a["zones"][0]["regime"] == "core" and a["nearest_redline"]
    exp = next(p for p in truth["patches"] if p["name"] == "grass_to_builtup")["centroid_lonlat"]
    b = client.post(
        "/screenings",
        json={"footprint": shapely.geometry.mapping(shapely.Point(exp).buffer(0.001)), "activity": "tourism"},
        headers=h,
    ).json()
    assert b["verdict"] == "needs_approval" and b["zones"][0]["severity"] == "medium"
    far = shapely.geometry.mapping(shapely.box(108.60, 39.78, 108.605, 39.785))
    c = client.post("/screenings", json={"footprint": far, "activity": "energy"}, headers=h).json()
    assert c["verdict"] == "clear" and c["zones"] == []
    assert 1000 < c["nearest_redline"]["distance_m"] < 50_000
    assert_problem(client.post("/screenings", json={"footprint": far, "activity": "volcano"}, headers=h), 422)
