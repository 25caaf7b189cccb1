"""Ground reports through the engine and the CLI, on both stores: a new flag with source ground,
or an observation of the flag the place lies on; inspectors inside their jurisdiction only."""

from __future__ import annotations

import io
import json

import pytest
import shapely
from pyproj import Transformer
from typer.testing import CliRunner

from redline.auth import Principal
from redline.cli import app
from redline.config import Settings
from redline.errors import InputError, PermissionDeniedError
from redline.ground import Photo, report_ground

from .conftest import UTM49, pixel_box
from .test_recheck import flags  # noqa: F401  (fixture: three flags from a real scan)

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"
A, B = "150625100", "150625201"
TO_LONLAT = Transformer.from_crs(UTM49, "EPSG:4326", always_xy=True)


def lonlat(col, row) -> tuple[float, float]:
    """The lon/lat of pixel (col, row) of the test grid."""
    c = pixel_box(col, row, col + 1, row + 1).centroid
    return TO_LONLAT.transform(c.x, c.y)


@pytest.fixture
def townships(load_zones):
    load_zones(
        "admin",
        [
            (pixel_box(0, 0, 350, 600), {"name": "A", "code": A}),
            (pixel_box(350, 0, 700, 600), {"name": "B", "code": B}),
        ],
    )


def state(store) -> tuple:
    rows = store.flags(with_geometry=False)
    audit = sum(len(store.history(f["id"])) for f in rows)
    return len(rows), sum(f["n_observations"] for f in rows), audit, sum(len(store.evidence(f["id"])) for f in rows)


def test_a_report_becomes_a_ground_flag_or_observes_the_flag_it_lies_on(store, flags, townships, tmp_path):  # noqa: F811
    farm, _, _ = flags
    settings = Settings(database_url="sqlite://", evidence_dir=tmp_path / "ev")
    admin = Principal("chief", "admin")
    # in the red line, clear of every flag: a new flag, its photo as evidence
    out = report_ground(
        store,
        shapely.Point(*lonlat(200, 400)),
        "road",
        "a new track",
        admin,
        photos=[Photo(io.BytesIO(JPEG), "track.jpg")],
        settings=settings,
    )
    flag = store.flag(out["flag_id"])
    assert out["new"] and (flag["source"], flag["source_ref"], flag["activity"]) == (
        "ground",
        out["source_ref"],
        "transport",
    )
    assert (flag["zone_layer"], flag["admin_code"], flag["status"]) == ("redline", A, "new")
    assert out["source_ref"].startswith("GR-") and flag["geometry"].contains(shapely.Point(*lonlat(200, 400)))
    assert [e["original_name"] for e in store.evidence(out["flag_id"])] == ["track.jpg"]
    assert (tmp_path / "ev" / str(out["flag_id"])).is_dir()
    # on the scanned farmland flag: an observation of it, never a duplicate
    before = state(store)
    seen = report_ground(store, shapely.Point(*lonlat(120, 120)), "耕地", "ploughed", admin, settings=settings)
    assert (seen["flag_id"], seen["new"]) == (farm, False)
    assert state(store)[:2] == (before[0], before[1] + 1)
    obs = store.observations(farm)[-1]
    assert (obs["source"], obs["source_ref"], obs["scan_id"], obs["product_id"]) == (
        "ground",
        seen["source_ref"],
        None,
        None,
    )
    assert store.history(farm)[-1]["action"] == "observed" and store.flag(farm)["source"] == "scan"


def test_inspectors_report_only_inside_their_jurisdiction(store, flags, townships, tmp_path):  # noqa: F811
    farm, _, _ = flags
    settings = Settings(database_url="sqlite://", evidence_dir=tmp_path / "ev")
    before = state(store)
    in_b = Principal("insp-b", "inspector", (B,))
    with pytest.raises(PermissionDeniedError, match="reported place is outside your jurisdiction"):
        report_ground(
            store, shapely.Point(*lonlat(200, 400)), "mining", "pit", in_b, photos=[Photo(io.BytesIO(JPEG), "a.jpg")]
        )
    # the place is theirs, the flag it lies on is not (it has no admin unit): refused, rolled back
    in_a = Principal("insp-a", "inspector", (A,))
    with pytest.raises(PermissionDeniedError, match="outside your jurisdiction"):
        report_ground(store, shapely.Point(*lonlat(120, 120)), "farmland", "ploughed", in_a, settings=settings)
    with pytest.raises(PermissionDeniedError, match="may not workflow"):
        report_ground(store, shapely.Point(*lonlat(200, 400)), "mining", "pit", Principal("v", "viewer"))
    with pytest.raises(InputError, match="unsupported file type"):
        report_ground(
            store,
            shapely.Point(*lonlat(200, 400)),
            "mining",
            "pit",
            in_a,
            photos=[Photo(io.BytesIO(b"<svg onload=alert(1)>"), "x.svg")],
            settings=settings,
        )
    assert state(store) == before and not (tmp_path / "ev").exists()
    ok = report_ground(store, shapely.Point(*lonlat(200, 400)), "mining", "pit", in_a, settings=settings)
    assert store.flag(ok["flag_id"])["admin_code"] == A


def test_cli_ground_add(store, store_url, flags, townships, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("REDLINE_EVIDENCE_DIR", str(tmp_path / "ev"))
    photo = tmp_path / "site.jpg"
    photo.write_bytes(JPEG)
    runner = CliRunner()

    def cli(*args):
        return runner.invoke(app, ["--db", store_url, "ground", "add", *map(str, args)])

    lon, lat = lonlat(250, 500)
    r = cli(
        "--lon",
        lon,
        "--lat",
        lat,
        "--activity",
        "光伏",
        "--note",
        "panels",
        "--photo",
        photo,
        "--ref",
        "12345",
        "--json",
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    flag = store.flag(out["flag_id"])
    assert (flag["source"], flag["source_ref"], flag["activity"], len(out["evidence"])) == (
        "ground",
        "12345",
        "energy",
        1,
    )
    assert store.history(out["flag_id"])[0]["actor"] == "operator"
    # a polygon from a file (GeoJSON, checked by redline.regions)
    x0, y0 = lonlat(50, 500)
    x1, y1 = lonlat(80, 530)
    region = tmp_path / "site.geojson"
    region.write_text(
        json.dumps({"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]})
    )
    r = cli(
        "--region",
        region,
        "--activity",
        "mining",
        "--note",
        "quarry",
        "--on",
        "2026-09-02",
        "--actor",
        "wang",
        "--json",
    )
    assert r.exit_code == 0, r.output
    flag = store.flag(json.loads(r.output)["flag_id"])
    assert flag["first_seen"] == "2026-09-02" and 8 < flag["area_ha"] < 10
    # one clear error for what makes no sense, and nothing written
    before = state(store)
    vrt = tmp_path / "site.kml"
    vrt.write_text("<OGRVRTDataSource><OGRVRTLayer name='x'/></OGRVRTDataSource>")
    for args, words in (
        (("--lon", lon, "--activity", "mining", "--note", "x"), "give the place"),
        (("--lon", lon, "--lat", lat, "--region", region, "--activity", "mining", "--note", "x"), "give the place"),
        (("--lon", lon, "--lat", lat, "--activity", "juggling", "--note", "x"), "unknown activity"),
        (("--lon", lon, "--lat", lat, "--activity", "mining", "--note", " "), "needs a note"),
        (("--lon", lon, "--lat", 95, "--activity", "mining", "--note", "x"), "not a longitude/latitude"),
        (("--region", vrt, "--activity", "mining", "--note", "x"), "XML that is not KML"),
        (("--lon", lon, "--lat", lat, "--activity", "mining", "--note", "x", "--photo", region), "unsupported file"),
    ):
        r = cli(*args)
        assert isinstance(r.exception, InputError) and words in str(r.exception), (args, r.exception)
    assert state(store) == before
