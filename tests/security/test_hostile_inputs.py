"""Hostile inputs (issue 9): what an attacker or a careless user sends must be refused cleanly.

Every test asserts the answer (status, problem+json, or CLI exit 2 with one line), and through
``guard`` that no file outside the allowed folders was opened or read (canary), that no network
connection was attempted (listener), that the canary's secret never came back, and that the
store is unchanged. API tests run against a real server (uvicorn subprocess, see conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import rasterio.transform
import shapely
from pyproj import Transformer

from redline.auth import create_token
from redline.store import open_store

from ..scenario import build
from . import hostile
from .hostile import Guard, Server, store_counts

REDLINE = str(Path(sys.executable).with_name("redline"))
JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------
# fixtures: the scanned sample (SQLite), servers over it, the guard


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenario")
    truth, url = build(out)
    data = out / "data"
    data.mkdir()
    shutil.copy(out / "change_classes.csv", data / "change_classes.csv")
    store = open_store(url)
    try:
        tokens = {
            "viewer": create_token(store, "v", "viewer"),
            "inspector": create_token(store, "i", "inspector", ["150625100"]),
            "analyst": create_token(store, "a", "analyst"),
            "admin": create_token(store, "root", "admin"),
        }
    finally:
        store.close()
    return {"out": out, "url": url, "data": data, "tokens": tokens, "truth": truth}


@pytest.fixture(scope="module")
def server(scenario, tmp_path_factory):
    s = Server(scenario["url"], scenario["data"], scenario["tokens"], tmp_path_factory.mktemp("server"))
    yield s
    s.stop()


@pytest.fixture
def api(server):
    """The module's server, alive and answering before the test (restarted if a test left it stuck)."""
    server.ensure()
    return server


@pytest.fixture
def make_server(scenario, tmp_path_factory):
    """A server of the test's own with extra settings, e.g. ``make_server(work_timeout_s=0.001)``."""
    servers = []

    def _make(**settings):
        s = Server(scenario["url"], scenario["data"], scenario["tokens"], tmp_path_factory.mktemp("server"), **settings)
        servers.append(s)
        return s

    yield _make
    for s in servers:
        s.stop()


@pytest.fixture
def guard(canary, listener, scenario):
    """Canary not opened nor read, secret not leaked, no connection, store unchanged: ``guard.verify(texts)``."""
    return Guard(canary, listener, scenario["url"])


def assert_problem(response, *statuses: int) -> dict:
    assert response.status_code in statuses, f"{response.status_code}: {response.text[:2000]}"
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == response.status_code and body.get("title"), body
    assert "Traceback" not in response.text
    return body


def upload(api, name: str, content: bytes, role="viewer", timeout=30.0, **params):
    return api.post(
        "/checks",
        role=role,
        timeout=timeout,
        params=params or None,
        files={"file": (name, content, "application/octet-stream")},
    )


def region_body(bounds=hostile.SAMPLE_BOX) -> bytes:
    return json.dumps(hostile.region_geojson(bounds)).encode()


# ---------------------------------------------------------------------------------------
# the detectors themselves


def test_detectors_see_what_they_guard(canary, listener):
    """The canary records an open of its pipe and a read of its file; the listener a connection."""
    assert canary.violations() == [] and listener.connections == []
    fd = os.open(canary.fifo, os.O_RDONLY)
    data = os.read(fd, 1000)
    os.close(fd)
    assert canary.secret.encode() in data
    time.sleep(0.05)
    assert canary.opens >= 1  # (counted again while the reader keeps it open)
    if not canary.atime_works:
        pytest.skip("this file system does not update access times (noatime): canary reads are not seen")
    assert not canary.read
    assert canary.secret in canary.file.read_text()
    assert canary.read
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{listener.url}/x", timeout=2).raise_for_status()
    time.sleep(0.1)
    assert len(listener.connections) == 1


# ---------------------------------------------------------------------------------------
# OGR VRT disguised as every accepted upload format


def vrt_target(target: str, canary, listener, scenario) -> bytes:
    if target == "canary_csv":  # the bytes of a local file, through the CSV driver
        return hostile.ogr_vrt(f"CSV:{canary.file}", "canary")
    if target == "canary_pipe":  # any local path (here a pipe that records being opened)
        return hostile.ogr_vrt(str(canary.fifo))
    if target == "vsicurl":
        return hostile.ogr_vrt(f"/vsicurl/{listener.url}/region.csv")
    if target == "http":
        return hostile.ogr_vrt(f"{listener.url}/region.geojson")
    if target == "store":  # the service's own database
        return hostile.ogr_vrt_sql(scenario["url"].removeprefix("sqlite:///"), hostile.STORE_SQL)
    raise AssertionError(target)


def disguise(container: str, vrt: bytes) -> tuple[str, bytes]:
    if container in ("geojson", "json", "kml", "gpkg", "fgb"):
        return f"region.{container}", vrt
    if container == "zip_shp":
        return "region.zip", hostile.zip_bytes({"region.shp": vrt})
    if container == "zip_vrt":
        return "region.zip", hostile.zip_bytes({"region.vrt": vrt})
    if container == "kmz":
        return "region.kmz", hostile.zip_bytes({"doc.kml": vrt})
    raise AssertionError(container)


@pytest.mark.parametrize("target", ["canary_csv", "canary_pipe", "vsicurl", "http", "store"])
@pytest.mark.parametrize("container", ["geojson", "json", "kml", "gpkg", "fgb", "zip_shp", "zip_vrt", "kmz"])
def test_vrt_disguised_upload_is_refused(api, guard, canary, listener, scenario, container, target):
    name, content = disguise(container, vrt_target(target, canary, listener, scenario))
    r = upload(api, name, content)
    assert_problem(r, 422)
    guard.verify(r.text)


# ---------------------------------------------------------------------------------------
# archives


@pytest.fixture(scope="module")
def shp_members(tmp_path_factory):
    return hostile.shapefile_members(tmp_path_factory.mktemp("shp"))


def test_valid_zipped_shapefile_is_accepted(api, shp_members):
    """The control: the same carrier without anything hostile is checked normally."""
    r = upload(api, "region.zip", hostile.zip_bytes(shp_members))
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["region"]["ha"] > 0


def test_zip_bomb_is_refused_before_inflating(api, guard):
    r = upload(api, "region.zip", hostile.zip_bomb(), timeout=30)
    assert_problem(r, 413)
    guard.verify(r.text)
    left = [p for p in api.tmp.iterdir() if not p.name.startswith("pymp-")]  # multiprocessing's own
    assert not left, f"upload temp files left behind: {left}"


def test_zip_with_too_many_members_is_refused(api, guard):
    r = upload(api, "region.zip", hostile.zip_many(10_000))
    assert_problem(r, 413)
    guard.verify(r.text)


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_zip_slip_is_refused_and_writes_nothing_outside(api, guard, canary, shp_members, kind):
    evil = f"evil-{uuid.uuid4().hex}.shp"
    member = f"../../../{evil}" if kind == "relative" else str(canary.dir / evil)
    r = upload(api, "region.zip", hostile.zip_bytes({**shp_members, member: shp_members["region.shp"]}))
    assert_problem(r, 422)
    guard.verify(r.text)
    places = [Path("/"), Path("/tmp"), canary.dir, api.folder, api.tmp, Path.cwd(), api.folder.parent]
    written = [str(p / evil) for p in places if (p / evil).exists()]
    written += [str(p) for p in api.folder.parent.rglob(evil)]
    assert not written, written


def test_nested_zip_is_refused(api, guard, shp_members):
    inner = hostile.zip_bytes(shp_members)
    r = upload(api, "region.zip", hostile.zip_bytes({"inner.zip": inner}))
    assert_problem(r, 422)
    guard.verify(r.text)


# ---------------------------------------------------------------------------------------
# XML entities


@pytest.mark.parametrize("target", ["canary_file", "canary_pipe", "http"])
def test_kml_external_entity_is_refused(api, guard, canary, listener, target):
    where = {"canary_file": str(canary.file), "canary_pipe": str(canary.fifo), "http": f"{listener.url}/entity"}[target]
    r = upload(api, "region.kml", hostile.kml_xxe(where))
    assert_problem(r, 422)
    guard.verify(r.text)


def test_kml_billion_laughs_is_refused(api, guard):
    r = upload(api, "region.kml", hostile.kml_billion_laughs(), timeout=30)
    assert_problem(r, 422)
    guard.verify(r.text)


def test_kmz_external_entity_is_refused(api, guard, canary):
    r = upload(api, "region.kmz", hostile.zip_bytes({"doc.kml": hostile.kml_xxe(str(canary.file))}))
    assert_problem(r, 422)
    guard.verify(r.text)


# ---------------------------------------------------------------------------------------
# malformed regions


def test_geopackage_without_geometry_is_refused(api, guard, tmp_path):
    path = hostile.gpkg_without_geometry(tmp_path / "attrs.gpkg")
    r = upload(api, "region.gpkg", path.read_bytes())
    assert_problem(r, 422)
    guard.verify(r.text)


def test_csv_upload_is_refused(api, guard):
    csv = b'id,WKT\n1,"POLYGON ((108.64 39.86,108.66 39.86,108.66 39.875,108.64 39.86))"\n'
    r = upload(api, "region.csv", csv)
    assert_problem(r, 422)
    guard.verify(r.text)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_coordinates_are_refused(api, guard, value):
    r = api.post("/checks", role="viewer", content=hostile.nan_polygon(value), headers=JSON)
    assert_problem(r, 422)
    body = json.dumps({"footprint": "__F__", "activity": "mining"}).replace(
        '"__F__"', hostile.nan_polygon(value).decode()
    )
    r2 = api.post("/screenings", role="viewer", content=body.encode(), headers=JSON)
    assert_problem(r2, 422)
    guard.verify(r.text, r2.text)


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_coordinates_in_uploaded_geojson_are_refused(api, guard, value):
    r = upload(api, "region.geojson", hostile.nan_polygon(value))
    assert_problem(r, 422)
    guard.verify(r.text)


@pytest.mark.parametrize("shape", ["arrays", "objects"])
@pytest.mark.parametrize("endpoint", ["/checks", "/screenings"])
def test_deeply_nested_json_is_refused(api, guard, endpoint, shape):
    deep = hostile.deep_json(5_000, key="a" if shape == "objects" else None)
    if endpoint == "/checks":
        body = '{"type": "Polygon", "coordinates": ' + deep + "}"
    else:
        body = '{"activity": "mining", "footprint": {"type": "Polygon", "coordinates": ' + deep + "}}"
    r = api.post(endpoint, role="viewer", content=body.encode(), headers=JSON)
    assert_problem(r, 422, 400)
    guard.verify(r.text)


# ---------------------------------------------------------------------------------------
# CRS strings: an allowlist, never a PROJ string or a file reference

EXOTIC_CRS = [
    "IAU_2015:30100",
    "+proj=longlat +a=1 +b=1",
    "+init={fifo}:root",
    "+init={file}:root",
    "file://{fifo}",
    "file://{file}",
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],PRIMEM["Greenwich",0],'
    'UNIT["degree",0.0174532925199433]]',
    "EPSG:99999",
]
ALLOWED_CRS = [
    "EPSG:4490",
    "EPSG:4326",
    "EPSG:32649",
    "4490",
    "OGC:CRS84",
    "http://www.opengis.net/def/crs/EPSG/0/4490",
    "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
]


def crs_request(api, endpoint: str, crs: str):
    """The same small region near the sample's flags, in ``crs`` (UTM coordinates for EPSG:32649)."""
    geom = shapely.box(*hostile.SAMPLE_BOX)
    if crs == "EPSG:32649":
        tr = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
        geom = shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    geometry = shapely.geometry.mapping(geom)
    if endpoint == "checks":
        return api.post("/checks", role="viewer", params={"crs": crs}, json=geometry)
    if endpoint == "screenings":
        return api.post("/screenings", role="viewer", json={"footprint": geometry, "activity": "mining", "crs": crs})
    if endpoint == "exports":
        # GeoPackage: a format that carries its CRS (GeoJSON is CRS84 by definition, RFC 7946)
        return api.get("/exports", role="analyst", params={"crs": crs, "format": "gpkg"})
    raise AssertionError(endpoint)


@pytest.mark.parametrize("crs", EXOTIC_CRS, ids=lambda c: c[:24])
@pytest.mark.parametrize("endpoint", ["checks", "screenings", "exports"])
def test_exotic_crs_is_refused(api, guard, canary, endpoint, crs):
    crs = crs.format(fifo=canary.fifo, file=canary.file)
    r = crs_request(api, endpoint, crs)
    assert_problem(r, 422)
    guard.verify(r.text)


@pytest.mark.parametrize("crs", ALLOWED_CRS)
@pytest.mark.parametrize("endpoint", ["checks", "screenings", "exports"])
def test_allowed_crs_is_accepted(api, guard, endpoint, crs):
    r = crs_request(api, endpoint, crs)
    assert r.status_code == 200, r.text[:1000]
    guard.verify(r.text)


# ---------------------------------------------------------------------------------------
# pathological geometry: bounded work, and /health stays responsive


def test_pathological_polygons_are_413_and_health_stays_responsive(make_server, guard):
    server = make_server()
    results: dict[str, object] = {}

    def fire(key: str, n: int) -> None:
        try:
            results[key] = server.post("/checks", role="viewer", content=hostile.star_body(n), headers=JSON, timeout=20)
        except Exception as exc:  # noqa: BLE001 -- a time-out is the failure reported below
            results[key] = exc

    # a first ordinary check, so that what is measured is the pool under load, not its start-up
    warm = server.post("/checks", role="viewer", content=region_body(), headers=JSON, timeout=60)
    assert warm.status_code == 200, warm.text[:1000]
    threads = [threading.Thread(target=fire, args=(f"{n}-{i}", n)) for n in (300, 1000) for i in range(3)]
    latencies = []
    # one client for all probes (building an httpx client costs ~20-30 ms, which is not the server's)
    with httpx.Client(base_url=server.base, timeout=5) as probe:
        probe.get("/health")
        for t in threads:
            t.start()
        time.sleep(0.05)
        deadline = time.monotonic() + 25
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                ok = probe.get("/health").status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - t0 if ok else float("inf"))
            time.sleep(0.02)
    for t in threads:
        t.join(30)
    assert latencies, "the requests ended before the first probe"
    for key, r in sorted(results.items()):
        assert not isinstance(r, Exception), f"{key}: {r!r}"
        assert_problem(r, 413)
    lat = sorted(latencies)
    assert lat[-1] < 0.1, (
        f"/health took up to {lat[-1]:.3f} s over {len(lat)} probes "
        f"(median {lat[len(lat) // 2]:.3f} s, slowest {[round(x, 3) for x in lat[-5:]]})"
    )
    guard.verify(*(r.text for r in results.values()))


def test_work_time_limit_answers_503(make_server, guard):
    server = make_server(work_timeout_s=0.001)
    r = server.post("/checks", role="viewer", content=region_body(), headers=JSON)
    assert_problem(r, 503)
    r2 = server.post("/checks", role="viewer", content=hostile.star_body(300), headers=JSON, timeout=20)
    assert_problem(r2, 503, 413)
    guard.verify(r.text, r2.text)


# ---------------------------------------------------------------------------------------
# raster VRTs renamed .tif in the data folder (POST /scans)


def write_raster_vrt(path: Path, target: str, canary, listener, scenario) -> Path:
    """A raster VRT over the whole sample scene (so it overlaps the zones and gets read)."""
    width, height = (16, 2) if target.startswith("canary") else (64, 64)
    with rasterio.open(scenario["out"] / "change_2026-06.tif") as ds:
        crs_wkt, b = ds.crs.to_wkt(), ds.bounds
    transform = rasterio.transform.from_bounds(*b, width, height)
    source = {
        "canary_raw": str(canary.file),  # the bytes of a local file become pixel values
        "canary_pipe": str(canary.fifo),
        "vsicurl": f"/vsicurl/{listener.url}/change.tif",
    }[target]
    content = hostile.raster_vrt(
        source, crs_wkt=crs_wkt, transform=transform, width=width, height=height, raw=target.startswith("canary")
    )
    path.write_bytes(content)
    return path


def wait_job(api, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/jobs/{job_id}").json()
        if job["state"] in ("successful", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.mark.parametrize("target", ["canary_raw", "canary_pipe", "vsicurl"])
def test_scan_of_raster_vrt_renamed_tif_fails_without_leaking(api, guard, canary, listener, scenario, target):
    name = f"evil-{target}-{uuid.uuid4().hex[:8]}.tif"
    write_raster_vrt(scenario["data"] / name, target, canary, listener, scenario)
    r = api.post("/scans", json={"product": name, "class_table": "change_classes.csv", "acquired_after": "2026-11-01"})
    texts = [r.text]
    if r.status_code == 201:
        job = wait_job(api, r.json()["id"])
        texts.append(json.dumps(job))
        assert job["state"] == "failed", job
        assert job["message"]
    else:
        assert_problem(r, 422)
    guard.verify(*texts, store_ignore=("table:jobs",))


# ---------------------------------------------------------------------------------------
# odd regions: antimeridian, the whole world, conflict area


def check_geometry(api, coordinates) -> dict:
    r = api.post("/checks", role="admin", json={"type": "Polygon", "coordinates": coordinates})
    assert r.status_code == 200, r.text[:1000]
    return r.json()["summary"]


def test_box_across_the_antimeridian_is_20_degrees_wide(api):
    # latitudes 39-41 hold the sample's zones (lon 108.6): read as a 340-degree band, it would touch them
    summary = check_geometry(api, [[[170, 39], [-170, 39], [-170, 41], [170, 41], [170, 39]]])
    expected = (hostile.geodesic_area_m2(170, 39, 180, 41) + hostile.geodesic_area_m2(-180, 39, -170, 41)) / 1e4
    assert summary["region"]["ha"] == pytest.approx(expected, rel=0.005)
    assert (summary["zones_touched"], summary["flags"]) == (0, 0), summary
    assert summary["conflict_area"]["ha"] <= summary["region"]["ha"]


def test_whole_world_box_is_the_earth(api):
    summary = check_geometry(api, [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]])
    assert summary["region"]["ha"] == pytest.approx(hostile.ellipsoid_area_m2() / 1e4, rel=0.005)
    assert summary["conflict_area"]["ha"] <= summary["region"]["ha"]


def test_conflict_area_is_inside_the_region(api, scenario):
    store = open_store(scenario["url"])
    try:
        flag = max(
            (f for f in store.flags() if f["status"] not in ("permitted", "false_positive")), key=lambda f: f["area_ha"]
        )
    finally:
        store.close()
    geom = flag["geometry"]
    p = geom.representative_point()
    minx, miny, maxx, maxy = geom.bounds
    dx, dy = (maxx - minx) / 8, (maxy - miny) / 8
    region = shapely.box(p.x - dx, p.y - dy, p.x + dx, p.y + dy)  # a small piece of the largest flag
    summary = check_geometry(api, shapely.geometry.mapping(region)["coordinates"])
    assert summary["conflicts"] >= 1
    assert 0 < summary["conflict_area"]["ha"] <= summary["region"]["ha"] * 1.0001
    assert summary["conflict_area"]["ha"] < flag["area_ha"]


# ---------------------------------------------------------------------------------------
# the command line


def cli(*args, db: str, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
    env["REDLINE_DATABASE_URL"] = db
    return subprocess.run([REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def assert_one_line_error(proc) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def layers_db(tmp_path_factory):
    """A store with the sample's layers and no scan, copied per test by ``fresh_db``."""
    from ..scenario import build

    out = tmp_path_factory.mktemp("layers")
    _, url = build(out, scan=False)
    return out, Path(url.removeprefix("sqlite:///"))


@pytest.fixture
def fresh_db(layers_db, tmp_path):
    out, path = layers_db
    dst = tmp_path / "fresh.db"
    src = sqlite3.connect(path)
    with sqlite3.connect(dst) as d:
        src.backup(d)
    src.close()
    return out, f"sqlite:///{dst}"


def region_file(tmp_path: Path, kind: str, canary, listener) -> tuple[Path, list]:
    extra: list = []
    if kind == "csv":
        path = tmp_path / "region.csv"
        path.write_text('id,WKT\n1,"POLYGON ((108.64 39.86,108.66 39.86,108.66 39.875,108.64 39.86))"\n')
    elif kind == "nan":
        path = tmp_path / "nan.geojson"
        path.write_bytes(
            b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
            b'"geometry": ' + hostile.nan_polygon() + b"}]}"
        )
    elif kind.startswith("vrt_"):
        path = tmp_path / "region.geojson"
        path.write_bytes(
            {
                "vrt_csv": hostile.ogr_vrt(f"CSV:{canary.file}", "canary"),
                "vrt_pipe": hostile.ogr_vrt(str(canary.fifo)),
                "vrt_vsicurl": hostile.ogr_vrt(f"/vsicurl/{listener.url}/r.csv"),
            }[kind]
        )
    elif kind == "nogeom":
        path = hostile.gpkg_without_geometry(tmp_path / "attrs.gpkg")
    elif kind == "iau":
        path = tmp_path / "plain.geojson"
        path.write_text(json.dumps(hostile.region_geojson()))
        extra = ["--crs", "IAU_2015:30100"]
    elif kind == "contradiction":
        import geopandas as gpd

        path = tmp_path / "declared.gpkg"
        gpd.GeoDataFrame({"name": ["r"]}, geometry=[shapely.box(*hostile.SAMPLE_BOX)], crs="EPSG:4326").to_file(path)
        extra = ["--crs", "EPSG:32649"]
    else:
        raise AssertionError(kind)
    return path, extra


@pytest.mark.parametrize("kind", ["csv", "nan", "nogeom", "vrt_csv", "vrt_pipe", "vrt_vsicurl", "iau", "contradiction"])
def test_cli_check_refuses_in_one_line(guard, canary, listener, scenario, tmp_path, kind):
    path, extra = region_file(tmp_path, kind, canary, listener)
    proc = cli("check", path, *extra, db=scenario["url"])
    assert_one_line_error(proc)
    guard.verify(proc.stdout, proc.stderr)


def test_cli_check_accepts_a_plain_region(scenario, tmp_path):
    """The control for the refusals above."""
    path = tmp_path / "plain.geojson"
    path.write_text(json.dumps(hostile.region_geojson()))
    proc = cli("check", path, "--json", db=scenario["url"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["summary"]["region"]["ha"] > 0


@pytest.mark.parametrize("target", ["canary_raw", "canary_pipe", "vsicurl"])
def test_cli_scan_of_raster_vrt_is_refused(guard, canary, listener, scenario, tmp_path, target):
    path = write_raster_vrt(tmp_path / "evil.tif", target, canary, listener, scenario)
    proc = cli(
        "scan",
        path,
        "--classes",
        scenario["data"] / "change_classes.csv",
        "--acquired-after",
        "2026-11-01",
        db=scenario["url"],
    )
    assert_one_line_error(proc)
    guard.verify(proc.stdout, proc.stderr)


def test_nightly_records_a_raster_vrt_as_failed_and_goes_on(canary, listener, scenario, fresh_db, tmp_path):
    out, db = fresh_db
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copy(out / "change_classes.csv", watch / "change_classes.csv")
    for name in ("change_2026-06.tif", "change_2026-06.json"):
        shutil.copy(out / name, watch / name)
    for target in ("canary_raw", "canary_pipe", "vsicurl"):
        path = write_raster_vrt(watch / f"evil_{target}.tif", target, canary, listener, scenario)
        path.with_suffix(".json").write_text(
            json.dumps(
                {"product_id": f"EVIL-{target}", "acquired_after": "2026-11-01", "class_table": "change_classes.csv"}
            )
        )
    proc = cli(
        "nightly", "--watch", watch, "--settle", "0", "--digest-dir", tmp_path / "digests", "--json", db=db, timeout=300
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    digest = json.loads(proc.stdout)
    failures = {f["item_id"]: f["reason"] for f in digest["failures"]}
    assert set(failures) == {"evil_canary_raw", "evil_canary_pipe", "evil_vsicurl"}, failures
    assert all(failures.values()), failures
    assert [s["item_id"] for s in digest["scans"]] == ["change_2026-06"]
    store = open_store(db)
    try:
        states = {e["item_id"]: e["state"] for e in store.ledger_entries()}
    finally:
        store.close()
    assert states == {
        "change_2026-06": "done",
        "evil_canary_raw": "failed",
        "evil_canary_pipe": "failed",
        "evil_vsicurl": "failed",
    }
    texts = [proc.stdout, proc.stderr] + [p.read_text() for p in (tmp_path / "digests").iterdir() if p.is_file()]
    problems = canary.violations() + canary.leaked(*texts)
    assert not problems and not listener.connections, (problems, listener.connections)


def test_cli_probability_thresholds_nan_is_refused_then_valid_ones_scan(scenario, fresh_db, tmp_path):
    out, db = fresh_db
    with rasterio.open(out / "change_2026-06.tif") as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
    arr = np.zeros(shape, dtype="float32")
    arr[100:160, 100:160] = 0.95
    path = tmp_path / "prob.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=shape[1],
        height=shape[0],
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
    ) as ds:
        ds.write(arr, 1)
    common = ["--mode", "probability", "--activity", "solar", "--acquired-after", "2026-11-01"]
    before = store_counts(db)
    bad = cli("scan", path, *common, "--thresholds", "nan", db=db)
    assert_one_line_error(bad)
    assert store_counts(db) == before, "a refused scan recorded something"
    good = cli("scan", path, *common, "--thresholds", "0.5,0.7,0.9", "--json", db=db)
    assert good.returncode == 0, good.stderr
    (res,) = json.loads(good.stdout)
    assert not res.get("skipped") and res["patches"] >= 1, res
