"""The same scenario in both stores gives the same answers: rows, checks, screenings,
statistics, exports (byte for byte where the format is text) and API responses.

The sample scenario is generated once and loaded and scanned into an SQLite file and a
PostGIS database. Only the wall-clock timestamps of the two builds differ; they are
checked to be ISO strings in UTC and then masked.
"""

from __future__ import annotations

import json
import re
from datetime import date

import geopandas as gpd
import pyogrio
import pytest
import shapely
from pydantic import BaseModel

from redline.auth import OPERATOR
from redline.check import check_region
from redline.export import FORMATS, export_flags
from redline.regions import read_region
from redline.rules import load_rules
from redline.screening import screen
from redline.store import STATS_GROUPS, FlagFilter, open_store
from redline.workflow import move

from .conftest import BACKENDS, ROOT, backend_url
from .scenario import build

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
TIMESTAMP_KEYS = {
    "created_at",
    "updated_at",
    "loaded_at",
    "started_at",
    "finished_at",
    "at",
    "revoked_at",
    "first_seen_at",
}


def norm(obj):
    """JSON text of ``obj`` (key order included) with geometries as WKB and timestamps masked."""

    def walk(o, key=None):
        if key in TIMESTAMP_KEYS and o is not None:
            assert isinstance(o, str) and TIMESTAMP.fullmatch(o), f"{key}: {o!r} is not an ISO timestamp in UTC"
            return "<timestamp>"
        if isinstance(o, shapely.Geometry):
            return shapely.to_wkb(o, hex=True)
        if isinstance(o, BaseModel):  # a typed record or answer (redline.model)
            return walk(o.model_dump(), key)
        if isinstance(o, dict):
            return {k: walk(v, k) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [walk(v) for v in o]
        return o

    return json.dumps(walk(obj), ensure_ascii=False, default=repr)  # dates: datetime.date(...)


def same(rows_by_backend: dict):
    sqlite, postgis = (norm(rows_by_backend[b]) for b in BACKENDS)
    assert sqlite == postgis


@pytest.fixture(scope="module")
def stores(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    stores = {}
    for backend in BACKENDS:  # the same files (paths, checksums) into both stores
        _, url = build(out, url=backend_url(request, backend, out))
        stores[backend] = s = open_store(url)
        # the same life after the scans: a workflow, a token, a job, a nightly-ledger entry
        fid = s.flags(FlagFilter(status=["new"], severity=["critical"]))[0]["id"]
        move(s, fid, "dispatched", "inspector", note="去现场核查")
        move(s, fid, "verified_violation", "inspector")
        s.add_token("王伟", "inspector", ["150625100"], "hash-1")
        s.add_job(
            {
                "id": "job-1",
                "kind": "scan",
                "state": "accepted",
                "progress": 0,
                "request": {"product": "x"},
                "actor": "admin",
            }
        )
        s.update_job("job-1", {"state": "successful", "progress": 100, "result": {"new_flags": [1, 2]}})
        s.ledger_start({"key": "k1", "source": "inbox", "item_id": "a", "location": str(out), "stamp": "s1"})
        s.ledger_update("k1", {"state": "done", "result": {"flags": 3}})
        s.url = url
    yield stores
    for s in stores.values():
        s.close()


def test_rows(stores):
    def rows(s):
        flags = s.flags()
        return {
            "layer_versions": s.layer_versions(current_only=False),
            "flags": flags,
            "flags_no_geometry": s.flags(with_geometry=False),
            "per_flag": [
                {
                    "flag": s.flag(f["id"]),
                    "conflicts": s.conflicts(f["id"]),
                    "observations": s.observations(f["id"]),
                    "history": s.history(f["id"]),
                }
                for f in flags
            ],
            "scans": s.scans(),
            "scan_by_checksum": s.scan_by_checksum(s.scans()[0]["checksum"]),
            "tokens": s.tokens(),
            "token": s.token_by_hash("hash-1"),
            "job": s.job("job-1"),
            "ledger": s.ledger_entries(),
            "ledger_entry": s.ledger_entry("k1"),
            "by_stamp": s.ledger_by_stamp("s1"),
        }

    same({b: rows(s) for b, s in stores.items()})


def test_zones(stores):
    def zones(s, bbox=None):
        out = []
        for z in s.zones(("redline", "reserve", "permit", "admin"), bbox=bbox):
            if bbox is None or shapely.intersects(z.geometry, shapely.box(*bbox)):  # what every caller does
                out.append({**z.__dict__})
        return out

    same({b: zones(s) for b, s in stores.items()})
    for bbox in ((108.6, 39.8, 108.7, 39.9), (108.72, 39.86, 108.73, 39.87), (108.7, 39.85, 108.7, 39.85)):
        same({b: zones(s, bbox) for b, s in stores.items()})
    region = read_region(ROOT / "sample_data" / "check_region.geojson").buffer(-0.02)  # exact, not bbox
    by_region = {
        b: [z.id for z in s.zones(("redline", "reserve", "permit", "admin"), region=region)] for b, s in stores.items()
    }
    same(by_region)
    assert (
        0
        < len(by_region["sqlite"])
        == sum(
            shapely.intersects(z.geometry, region)
            for z in stores["sqlite"].zones(("redline", "reserve", "permit", "admin"))
        )
    )


@pytest.mark.parametrize(
    "flt",
    [
        FlagFilter(),
        FlagFilter(bbox=(108.6, 39.8, 108.7, 39.9)),
        FlagFilter(bbox=(108.6555, 39.8, 108.6555, 39.9)),
        FlagFilter(status=["new"], severity=["critical", "high"]),
        FlagFilter(activity=["farmland", "energy"]),
        FlagFilter(admin_code=["150625201"]),
        FlagFilter(since=date(2026, 9, 1)),
        FlagFilter(until=date(2026, 7, 1)),
        FlagFilter(limit=2, after_id=1),
    ],
    ids=["all", "bbox", "line-bbox", "status", "activity", "admin", "since", "until", "page"],
)
def test_filters_and_stats(stores, flt):
    same(
        {
            b: {
                "ids": [f["id"] for f in s.flags(flt)],
                "count": s.count_flags(flt),
                "stats": {g: s.stats(g, flt) for g in STATS_GROUPS},
            }
            for b, s in stores.items()
        }
    )


def test_check_and_screening(stores):
    region = read_region(ROOT / "sample_data" / "check_region.geojson")
    rules = load_rules(None)
    footprint = shapely.box(108.66, 39.83, 108.69, 39.86)
    far = shapely.box(108.0, 39.0, 108.01, 39.01)
    same(
        {
            b: {
                "check": check_region(s, region, principal=OPERATOR),
                "june": check_region(s, region, until=date(2026, 7, 1), principal=OPERATOR),
                "screen": screen(s, footprint, "mining", rules),
                "far": screen(s, far, "solar", rules),
            }
            for b, s in stores.items()
        }
    )


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_exports(stores, tmp_path, fmt):
    suffix = FORMATS[fmt][0]
    files = {b: tmp_path / f"{b}{suffix}" for b in BACKENDS}
    for b, s in stores.items():
        export_flags(s, files[b], fmt=fmt, crs=None if fmt in ("kml", "geojson") else "EPSG:4490")
    if fmt in ("geojson", "csv", "kml"):  # text: the same bytes but for the timestamps
        sqlite, postgis = (TIMESTAMP.sub("<timestamp>", files[b].read_text()) for b in BACKENDS)
        assert sqlite == postgis
        return
    read = gpd.read_parquet if fmt == "parquet" else pyogrio.read_dataframe
    frames = {b: read(files[b]) for b in BACKENDS}
    for f in frames.values():
        assert len(f) == len(stores["sqlite"].flags())
    # timestamps differ between the two stores' runs; everything else must not
    frames = {b: f.drop(columns=["created_at", "updated_at"], errors="ignore") for b, f in frames.items()}
    assert frames["sqlite"].crs == frames["postgis"].crs
    assert frames["sqlite"].drop(columns="geometry").equals(frames["postgis"].drop(columns="geometry"))
    assert list(frames["sqlite"].geometry.to_wkb()) == list(frames["postgis"].geometry.to_wkb())


def test_api_answers(stores):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from redline.auth import create_token
    from redline.config import Settings

    region = json.loads((ROOT / "sample_data" / "check_region.geojson").read_text())
    answers = {}
    for b, s in stores.items():
        h = {"Authorization": f"Bearer {create_token(s, 'parity', 'admin')}"}
        with TestClient(create_app(Settings(database_url=s.url))) as client:
            fid = s.flags()[0]["id"]
            answers[b] = {
                "items": client.get(
                    "/collections/flags/items?limit=3&severity=high&severity=critical", headers=h
                ).json(),
                "zones": client.get("/collections/reserve/items?bbox=108.6,39.8,108.75,39.9", headers=h).json(),
                "flag": client.get(f"/flags/{fid}", headers=h).json(),
                "history": client.get(f"/flags/{fid}/history", headers=h).json(),
                "check": client.post("/checks", json=region, headers=h).json(),
                "stats": [client.get(f"/stats?group_by={g}", headers=h).json() for g in STATS_GROUPS],
            }
    same(answers)
