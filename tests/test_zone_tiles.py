"""Zoomed-out zone tiles pre-rendered with each layer version (issue 11): a layer load writes
the tiles of zooms 0..PRERENDER_ZOOM into the store; the API serves them from there, the same
bytes a fresh render gives, and renders whatever the table cannot answer for."""

from __future__ import annotations

import json
import sqlite3

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from redline import cql, tiles
from redline.auth import create_token
from redline.cli import app as cli_app
from redline.config import Settings
from redline.store import FlagFilter, open_store

from .api.test_tiles import FLAG_INDEXES_0011

KIND = "reserve"
BBOX = (108.0, 39.0, 110.0, 41.0)


def _zones(seed: int, names: str = "Z") -> list[dict]:
    """GeoJSON features: reserve zones of every size across BBOX, some with a hole."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(60):
        x, y = rng.uniform(BBOX[0] + 0.2, BBOX[2] - 0.2), rng.uniform(BBOX[1] + 0.2, BBOX[3] - 0.2)
        r = float(rng.choice([0.002, 0.01, 0.05, 0.15]))
        geom = shapely.Point(x, y).buffer(r, 8)
        if i % 7 == 0:
            geom = geom.difference(shapely.Point(x, y).buffer(r / 3, 8))
        out.append(
            {
                "type": "Feature",
                "properties": {"zone": ("core", "buffer")[i % 2], "name": f"{names}{i}", "code": f"R{i:03d}"},
                "geometry": shapely.geometry.mapping(geom),
            }
        )
    return out


def _load(url: str, path, features: list[dict]) -> dict:
    """``redline layers load``, as an operator loads a layer."""
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    result = CliRunner().invoke(cli_app, ["--db", url, "layers", "load", KIND, str(path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _sql(url: str, statement: str) -> None:
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.execute(statement)
        db.commit()
        db.close()
    else:
        with psycopg.connect(url) as conn:
            conn.execute(statement)


def _count(url: str, table: str) -> int:
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        db.close()
        return n
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return row[0]


def _refs() -> list[tiles.TileRef]:
    """Every tile of the pre-rendered zooms over BBOX, and a ring of tiles around it."""
    out = []
    for z in range(tiles.PRERENDER_ZOOM + 1):
        a, b = tiles.TMS.tile(BBOX[0], BBOX[3], z), tiles.TMS.tile(BBOX[2], BBOX[1], z)
        n = 1 << z
        for x in range(max(a.x - 1, 0), min(b.x + 2, n)):
            for y in range(max(a.y - 1, 0), min(b.y + 2, n)):
                out.append(tiles.TileRef(z, x, y))
    return out


@pytest.fixture
def api(store_url, tmp_path):
    store = open_store(store_url)
    token = create_token(store, "viewer", "viewer")
    store.close()
    tiles.TILES.clear()
    with TestClient(create_app(Settings(database_url=store_url))) as client:

        def get(ref: tiles.TileRef, query: str = ""):
            tiles.TILES.clear()  # (the process's tiles kept per data version: what a restart forgets)
            r = client.get(
                f"/collections/{KIND}/tiles/WebMercatorQuad/{ref.z}/{ref.y}/{ref.x}" + (f"?{query}" if query else ""),
                # identity: the API keeps gzipped tiles by ETag, which a tampered row keeps
                headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
            )
            assert r.status_code in (200, 204), r.text
            assert (r.status_code == 204) == (not r.content)
            return r

        yield {"url": store_url, "get": get, "dir": tmp_path}
    tiles.TILES.clear()


def _fresh(url: str, refs) -> dict:
    """Each tile rendered afresh (the pre-rendered tiles set aside first)."""
    _sql(url, "UPDATE zone_tile_sets SET rules = rules + 1000")  # by other rules: not served
    store = open_store(url)
    try:
        return {ref: tiles.render(store, KIND, ref) for ref in refs}
    finally:
        store.close()
        _sql(url, "UPDATE zone_tile_sets SET rules = rules - 1000")


def test_a_loaded_layer_serves_its_low_zoom_tiles_pre_rendered(api):
    url, get = api["url"], api["get"]
    _load(url, api["dir"] / "v1.geojson", _zones(1))
    refs = _refs()
    served = {ref: get(ref).content for ref in refs}
    assert _count(url, "zone_tile_sets") == 1
    assert _count(url, "zone_tiles") == sum(1 for body in served.values() if body)  # the non-empty ones
    assert any(served.values()) and not all(served.values())  # the ring holds empty tiles
    assert served == _fresh(url, refs)  # byte for byte
    # taken from the table: a row changed behind the engine's back is what is served
    store = open_store(url)
    try:
        lv = store.layer_versions(kind=KIND)[0]["id"]
        ref = next(r for r in refs if r.z == 6 and served[r])
        store.add_zone_tiles(lv, [(ref.z, ref.x, ref.y, b"pre-rendered")])
    finally:
        store.close()
    assert get(ref).content == b"pre-rendered"
    # above the pre-rendered zooms tiles are rendered as before
    t = tiles.TMS.tile(109.0, 40.0, tiles.PRERENDER_ZOOM + 1)
    deeper = tiles.TileRef(t.z, t.x, t.y)
    assert get(deeper).content == _fresh(url, [deeper])[deeper]


def test_a_new_layer_version_is_served_with_a_new_etag(api):
    url, get = api["url"], api["get"]
    _load(url, api["dir"] / "v1.geojson", _zones(1))
    refs = [r for r in _refs() if r.z == 6]
    before = {ref: get(ref) for ref in refs}
    _load(url, api["dir"] / "v2.geojson", _zones(2, names="N"))
    after = {ref: get(ref) for ref in refs}
    assert all(after[ref].headers["etag"] != before[ref].headers["etag"] for ref in refs)
    names = {
        g["properties"]["name"][0]
        for r in after.values()
        if r.content
        for g in mapbox_vector_tile.decode(r.content)[KIND]["features"]
    }
    assert names == {"N"}
    assert {ref: r.content for ref, r in after.items()} == _fresh(url, refs)
    # only the current version's tiles are kept
    store = open_store(url)
    try:
        versions = store.layer_versions(kind=KIND, current_only=False)
    finally:
        store.close()
    assert len(versions) == 2
    assert _count(url, f"zone_tiles WHERE layer_version_id = {versions[0]['id']}") == 0
    assert _count(url, "zone_tile_sets") == 1


def test_a_filtered_tile_is_rendered_not_taken_from_the_table(api):
    url, get = api["url"], api["get"]
    _load(url, api["dir"] / "v1.geojson", _zones(1))
    ref = next(r for r in _refs() if r.z == 6 and get(r).content)
    store = open_store(url)
    try:
        lv = store.layer_versions(kind=KIND)[0]["id"]
        store.add_zone_tiles(lv, [(ref.z, ref.x, ref.y, b"pre-rendered")])
        expected = tiles.render(store, KIND, ref, FlagFilter(cql=cql.parse("regime='core'", None, KIND)))
    finally:
        store.close()
    assert get(ref).content == b"pre-rendered"
    filtered = get(ref, "filter=regime%3D%27core%27").content
    assert filtered == expected and filtered != b"pre-rendered"
    feats = mapbox_vector_tile.decode(filtered)[KIND]["features"]
    assert feats and {g["properties"]["regime"] for g in feats} == {"core"}


def test_tiles_missing_from_the_table_are_rendered(api):
    """A pre-render cut short (killed mid-way: no set row, some tiles written), tiles written by
    other tile rules, or none at all (a store migrated from before): tiles are rendered."""
    url, get = api["url"], api["get"]
    _load(url, api["dir"] / "v1.geojson", _zones(1))
    refs = _refs()
    fresh = _fresh(url, refs)
    store = open_store(url)
    try:
        lv = store.layer_versions(kind=KIND)[0]["id"]
        store.add_zone_tiles(lv, [(0, 0, 0, b"other rules")])
    finally:
        store.close()
    _sql(url, "UPDATE zone_tile_sets SET rules = rules + 1")  # pre-rendered by another redline
    assert {ref: get(ref).content for ref in refs} == fresh
    _sql(url, "UPDATE zone_tile_sets SET rules = rules - 1")
    complete = _count(url, "zone_tiles")
    _sql(url, "DELETE FROM zone_tile_sets")
    _sql(url, "DELETE FROM zone_tiles WHERE z >= 5")  # what the killed run had not written yet
    assert _count(url, "zone_tiles") > 0
    store = open_store(url)
    try:
        store.add_zone_tiles(lv, [(0, 0, 0, b"half-way")])  # never served without its set
        # nor marked complete while tiles are missing (a second run cleared them meanwhile)
        assert not store.zone_tiles_written(lv, tiles.PRERENDER_ZOOM, tiles.ZONE_TILE_RULES, complete)
    finally:
        store.close()
    assert {ref: get(ref).content for ref in refs} == fresh
    _sql(url, "DELETE FROM zone_tiles")
    assert {ref: get(ref).content for ref in refs} == fresh
    # pre-rendered again (what the next load does): served from the table
    store = open_store(url)
    try:
        done = tiles.prerender_zone_tiles(store, KIND)
    finally:
        store.close()
    assert done is not None and done["tiles"] == _count(url, "zone_tiles") == sum(1 for b in fresh.values() if b)
    assert {ref: get(ref).content for ref in refs} == fresh


def test_migration_0010_keeps_data_and_loaded_layers_render(store_url, tmp_path):
    """A store of revision 0009 with a layer loaded upgrades to 0010: the layer is kept and
    its tiles rendered per request until they are pre-rendered."""
    from redline.store.migrations import HEAD, upgrade

    _load(store_url, tmp_path / "v1.geojson", _zones(1))
    refs = [r for r in _refs() if r.z in (0, 6, 7)]
    fresh = _fresh(store_url, refs)
    _sql(store_url, "DROP TABLE zone_tile_sets")
    _sql(store_url, "DROP TABLE zone_tiles")
    for name in FLAG_INDEXES_0011:  # (migration 0011's)
        _sql(store_url, f"DROP INDEX {name}")
    _sql(store_url, "UPDATE alembic_version SET version_num = '0009'")
    if store_url.startswith("sqlite"):
        _sql(store_url, "PRAGMA user_version = 9")
    assert upgrade(store_url) == ("0009", HEAD)
    assert _count(store_url, "zone_tiles") == _count(store_url, "zone_tile_sets") == 0
    store = open_store(store_url)
    try:
        assert len(store.zones((KIND,))) == 60
        assert {ref: tiles.render(store, KIND, ref) for ref in refs} == fresh
        assert store.zone_tile(KIND, 0, 0, 0, tiles.ZONE_TILE_RULES) is None
    finally:
        store.close()
    # `redline db upgrade` renders the tiles the loaded layers lack; a second run has none to render
    for rendered in ([KIND], []):
        result = CliRunner().invoke(cli_app, ["--db", store_url, "db", "upgrade", "--json"])
        assert result.exit_code == 0, result.output
        assert [t["kind"] for t in json.loads(result.output)["tiles"]] == rendered
    store = open_store(store_url)
    try:
        assert store.zone_tile(KIND, 0, 0, 0, tiles.ZONE_TILE_RULES) == fresh[tiles.TileRef(0, 0, 0)]
        assert _count(store_url, "zone_tile_sets") == 1
    finally:
        store.close()
