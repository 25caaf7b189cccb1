"""OGC API – Tiles: vector tiles of flags and zones, decoded with the encoder's own library."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import pytest
import shapely

from redline.layers import read_layer, read_mapping_file
from redline.store import open_store

from ..scenario import ROOT
from .conftest import XIN, YIHE, assert_problem

TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
FLAG_KEYS = {
    "id",
    "severity",
    "status",
    "activity",
    "admin_code",
    "admin_name",
    "zone_name",
    "first_seen",
    "last_seen",
    "area_ha",
}


def _url(cid: str, t, query: str = "") -> str:
    return f"/collections/{cid}/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}" + (f"?{query}" if query else "")


def _decode(r, cid: str) -> list[dict]:
    if r.status_code == 204:
        return []
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == MVT
    layers = mapbox_vector_tile.decode(r.content)
    assert list(layers) == [cid]
    return layers[cid]["features"]


@pytest.fixture(scope="module")
def flags(env):
    admin = {"Authorization": f"Bearer {env['tokens']['admin']}"}
    features = env["client"].get("/collections/flags/items?limit=1000", headers=admin).json()["features"]
    assert len(features) == 8
    for f in features:
        f["shape"] = shapely.geometry.shape(f["geometry"])
    return features


@pytest.fixture(scope="module")
def overview(flags):
    """The smallest tile (a point zoom) holding every flag."""
    box = shapely.GeometryCollection([f["shape"] for f in flags]).bounds
    for z in range(9, 0, -1):
        a, b = TMS.tile(box[0], box[3], z), TMS.tile(box[2], box[1], z)
        if (a.x, a.y) == (b.x, b.y):
            return a
    raise AssertionError("no tile holds every flag")


def test_tile_matrix_sets(client, auth):
    h = auth("viewer")
    sets = client.get("/tileMatrixSets", headers=h).json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    doc = client.get("/tileMatrixSets/WebMercatorQuad", headers=h).json()
    assert doc["id"] == "WebMercatorQuad" and doc["crs"].endswith("3857") and len(doc["tileMatrices"]) >= 23
    assert doc["tileMatrices"][0]["matrixWidth"] == 1 and doc["tileMatrices"][0]["tileWidth"] == 256
    assert_problem(client.get("/tileMatrixSets/WorldCRS84Quad", headers=h), 404, "WebMercatorQuad")
    assert_problem(client.get("/tileMatrixSets", headers=auth("viewer") | {}, params={"x": "1"}), 400, "'x'")
    assert_problem(client.get("/tileMatrixSets"), 401)


def test_tileset_metadata_is_ogc_and_tilejson(client, auth):
    h = auth("viewer")
    for cid in ("flags", "redline", "reserve", "permit", "admin"):
        listing = client.get(f"/collections/{cid}/tiles", headers=h).json()["tilesets"]
        assert listing[0]["dataType"] == "vector" and listing[0]["tileMatrixSetURI"].endswith("WebMercatorQuad")
        ts = client.get(f"/collections/{cid}/tiles/WebMercatorQuad", headers=h).json()
        assert ts["tiles"] == [f"http://testserver/collections/{cid}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"]
        assert 0 <= ts["minzoom"] < ts["maxzoom"] and ts["vector_layers"][0]["id"] == cid
        item = next(link for link in ts["links"] if link["rel"] == "item")
        assert item["type"] == MVT and item["href"].endswith("/{tileMatrix}/{tileRow}/{tileCol}")
        assert ts["layers"][0]["id"] == cid
    ts = client.get("/collections/flags/tiles/WebMercatorQuad?severity=critical&status=new", headers=h).json()
    assert ts["tiles"][0].endswith("/{z}/{y}/{x}?severity=critical&status=new")  # filters carried to the tiles
    assert_problem(client.get("/collections/roads/tiles", headers=h), 404, "roads")
    assert_problem(client.get("/collections/flags/tiles/Nope", headers=h), 404)
    assert_problem(client.get("/collections/flags/tiles/WebMercatorQuad?limit=3", headers=h), 400, "'limit'")


def test_flag_tile_polygons_with_properties(client, auth, flags):
    h = auth("admin")
    for f in flags:
        p = f["shape"].representative_point()
        t = TMS.tile(p.x, p.y, 15)
        r = client.get(_url("flags", t), headers=h)
        assert r.headers["cache-control"] and r.headers["etag"]
        got = {g["id"]: g for g in _decode(r, "flags")}
        assert f["id"] in got
        g = got[f["id"]]
        assert g["geometry"]["type"] in ("Polygon", "MultiPolygon")
        assert set(g["properties"]) <= FLAG_KEYS and {"id", "severity", "status", "activity"} <= set(g["properties"])
        for k in FLAG_KEYS & set(g["properties"]):
            expected = f["properties"][k] if k != "id" else f["id"]
            assert g["properties"][k] == pytest.approx(expected) if k == "area_ha" else g["properties"][k] == expected
        for k in FLAG_KEYS - set(g["properties"]):
            assert f["properties"].get(k) is None  # MVT has no null: absent means null


def test_flag_tile_at_low_zoom_is_points_one_per_pixel(client, auth, flags, overview):
    feats = _decode(client.get(_url("flags", overview), headers=auth("admin")), "flags")
    assert {g["geometry"]["type"] for g in feats} == {"Point"}
    assert sum(g["properties"]["pixel_flags"] for g in feats) == len(flags)
    assert {g["id"] for g in feats} <= {f["id"] for f in flags}


def test_flag_filters_apply_to_tiles(client, auth, flags, overview):
    h = auth("admin")
    severe = client.get("/collections/flags/items?severity=critical&severity=high", headers=h).json()["features"]
    feats = _decode(client.get(_url("flags", overview, "severity=critical&severity=high"), headers=h), "flags")
    assert sum(g["properties"]["pixel_flags"] for g in feats) == len(severe) > 0
    assert {g["properties"]["severity"] for g in feats} <= {"critical", "high"}
    assert _decode(client.get(_url("flags", overview, "datetime=2030-01-01/.."), headers=h), "flags") == []
    r = client.get(_url("flags", overview, f"admin={YIHE}&activity=farmland"), headers=h)
    assert {g["properties"]["admin_code"] for g in _decode(r, "flags")} == {YIHE}
    assert_problem(client.get(_url("flags", overview, "bogus=1"), headers=h), 400, "'bogus'")
    assert_problem(client.get(_url("flags", overview, "severity=dire"), headers=h), 422)
    assert client.get(_url("flags", overview, "f=mvt"), headers=h).status_code == 200
    assert_problem(client.get(_url("flags", overview, "f=json"), headers=h), 422)


def test_jurisdiction_applies_to_tiles(client, auth, flags, overview):
    for role, code in (("inspector", XIN), ("inspector_yihe", YIHE)):
        feats = _decode(client.get(_url("flags", overview), headers=auth(role)), "flags")
        expected = [f for f in flags if f["properties"]["admin_code"] == code]
        assert {g["properties"]["admin_code"] for g in feats} == {code}
        assert sum(g["properties"]["pixel_flags"] for g in feats) == len(expected)
    assert_problem(
        client.get(_url("flags", overview, f"admin={XIN}"), headers=auth("inspector_yihe")),
        403,
        "outside your jurisdiction",
    )
    # the same tile, another jurisdiction: another ETag (a shared cache must not mix them)
    a = client.get(_url("flags", overview), headers=auth("inspector")).headers["etag"]
    b = client.get(_url("flags", overview), headers=auth("inspector_yihe")).headers["etag"]
    assert a != b


@pytest.mark.parametrize("cid", ["redline", "reserve", "permit", "admin"])
def test_zone_tiles(client, auth, cid):
    h = auth("viewer")
    zones = (
        client.get(f"/collections/{cid}/items?limit=1000", headers=h).json()["features"]
        if cid in ("redline", "reserve")
        else None
    )
    store_zones = open_store(client.app.state.settings.database_url)
    try:
        rows = store_zones.zones((cid,))
    finally:
        store_zones.close()
    assert rows
    z0 = rows[0]
    p = z0.geometry.representative_point()
    feats = _decode(client.get(_url(cid, TMS.tile(p.x, p.y, 14)), headers=h), cid)
    got = {g["id"]: g for g in feats}
    assert z0.id in got
    props = got[z0.id]["properties"]
    assert props["name"] == z0.name and props["regime"] == z0.regime and props["layer"] == cid
    assert set(props) <= {"id", "name", "regime", "code", "layer"}
    assert got[z0.id]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    if zones is not None:
        assert z0.id in {z["id"] for z in zones}


def test_empty_and_out_of_range_tiles(client, auth):
    h = auth("viewer")
    far = TMS.tile(-60.0, -30.0, 12)  # South America: nothing there
    for cid in ("flags", "redline"):
        r = client.get(_url(cid, far), headers=h)
        assert r.status_code == 204 and not r.content and r.headers["etag"]
    assert_problem(client.get("/collections/flags/tiles/WebMercatorQuad/3/8/0", headers=h), 404, "outside")
    assert_problem(client.get("/collections/flags/tiles/WebMercatorQuad/30/0/0", headers=h), 404, "outside")
    assert_problem(client.get("/collections/flags/tiles/WebMercatorQuad/-1/0/0", headers=h), 404)
    assert_problem(client.get("/collections/roads/tiles/WebMercatorQuad/3/0/0", headers=h), 404)
    assert_problem(client.get("/collections/flags/tiles/WebMercatorQuad/3/0/0"), 401)


def test_zone_tiles_are_kept_per_layer_version(client, auth, overview):
    from redline import tiles

    tiles.ZONE_TILES.clear()
    h = auth("viewer")
    first = client.get(_url("reserve", overview), headers=h)
    assert first.status_code == 200 and len(tiles.ZONE_TILES.entries) == 1
    again = client.get(_url("reserve", overview), headers=h)
    assert again.content == first.content and len(tiles.ZONE_TILES.entries) == 1  # served from the cache
    filtered = client.get(_url("reserve", overview, "filter=" + "regime%3D%27core%27"), headers=h)
    assert len(tiles.ZONE_TILES.entries) == 2 and filtered.content != first.content
    assert {g["properties"]["regime"] for g in _decode(filtered, "reserve")} == {"core"}


def test_etag_304_and_changes(env, client, auth, flags, overview):
    h = auth("admin")
    url = _url("flags", overview)
    first = client.get(url, headers=h)
    tag = first.headers["etag"]
    assert client.get(url, headers=h).headers["etag"] == tag  # stable
    r = client.get(url, headers=h | {"If-None-Match": tag})
    assert r.status_code == 304 and not r.content and r.headers["etag"] == tag
    assert client.get(url, headers=h | {"If-None-Match": '"other"'}).status_code == 200
    assert client.get(_url("flags", overview, "severity=low"), headers=h).headers["etag"] != tag
    zone_url = _url("redline", overview)
    zone_tag = client.get(zone_url, headers=h).headers["etag"]

    # a workflow move changes the flag tiles (not the zone tiles)
    fid = next(f["id"] for f in flags if f["properties"]["status"] == "new")
    assert client.patch(f"/flags/{fid}", headers=h, json={"status": "dispatched"}).status_code == 200
    moved = client.get(url, headers=h | {"If-None-Match": tag})
    assert moved.status_code == 200 and moved.headers["etag"] != tag
    assert client.get(zone_url, headers=h | {"If-None-Match": zone_tag}).status_code == 304

    # a new version of the red-line layer changes the red-line tiles
    store = open_store(env["url"])
    try:
        mapping = read_mapping_file(ROOT / "sample_data" / "mapping.toml", "redline")
        store.add_layer_version(read_layer("redline", env["out"] / "redline.gpkg", mapping=mapping))
    finally:
        store.close()
    r = client.get(zone_url, headers=h | {"If-None-Match": zone_tag})
    assert r.status_code == 200 and r.headers["etag"] != zone_tag

    # a new scan (even one that changed no flag) changes the flag tiles
    tag = client.get(url, headers=h).headers["etag"]
    store = open_store(env["url"])
    try:
        store.insert_scan(
            {
                "checksum": "etag-test",
                "product_id": "P",
                "mode": "class",
                "sensor": None,
                "acquired_before": "2026-10-01",
                "acquired_after": "2026-10-02",
                "files": [],
                "started_at": "2026-10-02T00:00:00+00:00",
                "finished_at": "2026-10-02T00:00:00+00:00",
                "state": "done",
                "stats": {},
                "layer_versions": {},
                "rules_version": "t",
                "observed_fraction": 0.0,
            },
            None,
        )
    finally:
        store.close()
    r = client.get(url, headers=h | {"If-None-Match": tag})
    assert r.status_code == 200 and r.headers["etag"] != tag


def test_database_tiles_match_the_engine(env, flags, overview):
    """PostGIS builds tiles in the database (ST_AsMVT); the engine's own encoder (the SQLite
    path) gives the same features and properties for the same tile."""
    from redline import tiles

    store = open_store(env["url"])
    try:
        refs = [tiles.TileRef(overview.z, overview.x, overview.y)]
        for f in flags[:3]:
            p = f["shape"].representative_point()
            for z in (11, 14):
                t = TMS.tile(p.x, p.y, z)
                refs.append(tiles.TileRef(z, t.x, t.y))
        for cid in ("flags", "redline", "reserve", "admin"):
            for ref in refs:
                a, b = (tiles.render(store, cid, ref, in_database=d) for d in (True, False))
                fa, fb = (
                    {g["id"]: g for g in (mapbox_vector_tile.decode(x)[cid]["features"] if x else [])} for x in (a, b)
                )
                assert fa.keys() == fb.keys(), (cid, ref)
                for i in fa:
                    pa, pb = fa[i]["properties"], fb[i]["properties"]
                    assert pa.keys() == pb.keys() and all(pa[k] == pytest.approx(pb[k]) for k in pa), (cid, ref, i)
                    ga, gb = (shapely.geometry.shape(g[i]["geometry"]) for g in (fa, fb))
                    assert ga.geom_type.removeprefix("Multi") == gb.geom_type.removeprefix("Multi")
                    assert ga.centroid.distance(gb.centroid) < 16, (cid, ref, i)  # a screen pixel
    finally:
        store.close()
