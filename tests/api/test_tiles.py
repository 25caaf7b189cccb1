"""OGC API – Tiles: vector tiles of flags and zones, decoded with the encoder's own library."""

from __future__ import annotations

from datetime import date

import mapbox_vector_tile
import morecantile
import pytest
import shapely

from redline.layers import LoadReport, Zone, read_layer, read_mapping_file
from redline.store import open_store

from ..conftest import BACKENDS, backend_url
from ..rows import flag_row
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

    tiles.TILES.clear()
    h = auth("viewer")
    first = client.get(_url("reserve", overview), headers=h)
    assert first.status_code == 200 and len(tiles.TILES.entries) == 1
    again = client.get(_url("reserve", overview), headers=h)
    assert again.content == first.content and len(tiles.TILES.entries) == 1  # served from the cache
    filtered = client.get(_url("reserve", overview, "filter=" + "regime%3D%27core%27"), headers=h)
    assert len(tiles.TILES.entries) == 2 and filtered.content != first.content
    assert {g["properties"]["regime"] for g in _decode(filtered, "reserve")} == {"core"}


def test_large_tiles_come_gzipped_once(env, auth, overview):
    """A tile of at least REDLINE_GZIP_MIN_BYTES comes gzip-compressed to clients that accept
    it (compressed once per tile and version, then served as is), plain to the others."""
    import gzip

    from fastapi.testclient import TestClient

    from api import tiles as api_tiles
    from api.app import create_app

    h = auth("viewer")
    with TestClient(create_app(env["settings"].model_copy(update={"gzip_min_bytes": 100}))) as client:
        plain = client.get(_url("redline", overview), headers=h | {"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and len(plain.content) >= 100
        assert "content-encoding" not in plain.headers
        api_tiles.GZIPPED.clear()
        packed = client.get(_url("redline", overview), headers=h | {"Accept-Encoding": "gzip"})
        assert packed.headers["content-encoding"] == "gzip" and "Accept-Encoding" in packed.headers["vary"]
        assert packed.content == plain.content  # httpx undid the gzip: the same tile
        again = client.get(_url("redline", overview), headers=h | {"Accept-Encoding": "gzip"})
        assert again.content == plain.content and len(api_tiles.GZIPPED.entries) == 1  # compressed once
        body = next(iter(api_tiles.GZIPPED.entries.values()))
        assert gzip.decompress(body) == plain.content


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


# --- zoomed-out tiles on a dense store: the fast paths keep what a user sees ----------------

SEVERITIES = ("low", "medium", "high", "critical")


@pytest.fixture(scope="module", params=BACKENDS)
def dense(request, tmp_path_factory):
    """A store (both backends) with 600 flags and 150 red-line zones inside one zoom-9 tile
    (so inside one tile of every point zoom), among them zones under a pixel when zoomed out
    and multipolygons with holes."""
    import numpy as np

    url = backend_url(request, request.param, tmp_path_factory.mktemp("dense"))
    t9 = TMS.tile(109.3, 40.3, 9)
    b = TMS.bounds(t9)
    w, s_, e, n = b.left, b.bottom, b.right, b.top
    pad_x, pad_y = (e - w) * 0.1, (n - s_) * 0.1
    rng = np.random.default_rng(11)
    store = open_store(url)
    zones = []
    for i in range(150):
        cx, cy = rng.uniform(w + pad_x, e - pad_x), rng.uniform(s_ + pad_y, n - pad_y)
        r = [0.0004, 0.004, 0.02][i % 3]  # the smallest is under a pixel up to zoom 9
        geom = shapely.Point(cx, cy).buffer(r, 12)
        if i % 10 == 0:  # a ring with a hole, and a second part
            geom = shapely.MultiPolygon([geom.difference(shapely.Point(cx, cy).buffer(r / 3)), geom.buffer(0).envelope])
            geom = shapely.make_valid(geom)
        zones.append(Zone("redline", f"RL-{i}", "redline", geom, f"C{i}", {}, area_ha=1.0))
    store.add_layer_version(LoadReport("redline", "dense", "EPSG:4326", "-", len(zones), zones))
    flags = []
    with store.transaction():
        for i in range(600):
            cx, cy = rng.uniform(w + pad_x, e - pad_x), rng.uniform(s_ + pad_y, n - pad_y)
            day = f"2026-0{1 + i % 9}-{1 + i % 28:02d}"
            row = dict(FLAG_ROW, severity=SEVERITIES[i % 4], admin_code=str(i % 3), first_seen=day, last_seen=day)
            row["id"] = store.insert_flag(row, shapely.box(cx, cy, cx + 0.002, cy + 0.002))
            flags.append(row)
    yield {"store": store, "flags": flags, "zones": store.zones(("redline",)), "tile9": t9}
    store.close()


FLAG_ROW = flag_row(area_ha=1.5, area_mu=22.5, admin_name="某乡")


def _tile_at(dense, z: int):
    from redline import tiles

    b = TMS.bounds(dense["tile9"])
    t = TMS.tile((b.left + b.right) / 2, (b.bottom + b.top) / 2, z)
    return tiles.TileRef(z, t.x, t.y)


@pytest.mark.parametrize(
    "wanted",
    [
        {},
        {"severity": ["critical", "high"]},
        {"admin_code": ["2"]},  # a jurisdiction
        {"since": date(2026, 5, 1), "until": date(2026, 8, 31)},
    ],
    ids=["all", "severity", "admin", "dates"],
)
def test_point_tiles_count_every_flag_and_match_the_store(dense, wanted):
    """Zoomed out, the engine thins the flags' points itself (FlagPoints): the tile counts
    every flag the filter lets through, and keeps exactly the points of the store's own SQL
    thinning (Store.flag_cells), the most severe of each cell."""
    from redline import tiles
    from redline.store import FlagFilter

    store, flt = dense["store"], FlagFilter(**wanted)

    def passes(f) -> bool:
        return (
            (not flt.severity or f["severity"] in flt.severity)
            and (not flt.admin_code or f["admin_code"] in flt.admin_code)
            and (not flt.since or f["last_seen"] >= flt.since.isoformat())
            and (not flt.until or f["first_seen"] <= flt.until.isoformat())
        )

    expected = [f for f in dense["flags"] if passes(f)]
    assert 0 < len(expected)
    for z in (6, 7, 8, 9):
        ref = tiles.TileRef(*_xyz(_tile_at(dense, z)))
        body = tiles.render(store, "flags", ref, flt)
        feats = mapbox_vector_tile.decode(body)["flags"]["features"]
        assert {g["geometry"]["type"] for g in feats} == {"Point"}
        assert sum(g["properties"]["pixel_flags"] for g in feats) == len(expected), z
        by_id = {f["id"]: f for f in expected}
        sql = {r["id"]: r for r in store.flag_cells(flt, tiles.spec(ref))}
        assert {g["id"] for g in feats} == set(sql), z
        for g in feats:
            r, f = sql[g["id"]], by_id[g["id"]]
            assert g["properties"]["pixel_flags"] == r["pixel_flags"]
            assert g["properties"]["severity"] == f["severity"] and g["properties"]["admin_name"] == "某乡"
            assert abs(g["geometry"]["coordinates"][0] - r["px"]) <= 1
            assert abs(g["geometry"]["coordinates"][1] - (tiles.EXTENT - r["py"])) <= 1  # decoded y up
        if z == 6:  # one cell holds many flags: the most severe of them is kept
            biggest = max(feats, key=lambda g: g["properties"]["pixel_flags"])
            assert biggest["properties"]["pixel_flags"] > 1
            assert biggest["properties"]["severity"] == max((f["severity"] for f in expected), key=SEVERITIES.index)


def _xyz(ref):
    return ref.z, ref.x, ref.y


def test_point_tiles_follow_flag_changes(dense):
    """The engine's flag points are per data version: a change shows in the next tile."""
    from redline import tiles

    store = dense["store"]
    ref = _tile_at(dense, 6)
    version = tiles.data_version(store, "flags")
    feats = mapbox_vector_tile.decode(tiles.render(store, "flags", ref, version=version))["flags"]["features"]
    target = min(feats, key=lambda g: g["properties"]["pixel_flags"])
    flag = store.flag(target["id"])
    store.update_flag(target["id"], {"status": "dispatched"})
    store.audit(target["id"], "tiles-test", "status", {"to": "dispatched"})  # as the workflow does
    try:
        new_version = tiles.data_version(store, "flags")
        assert new_version != version
        again = mapbox_vector_tile.decode(tiles.render(store, "flags", ref, version=new_version))["flags"]["features"]
        assert {g["id"]: g for g in again}[target["id"]]["properties"]["status"] == "dispatched"
    finally:
        store.update_flag(target["id"], {"status": flag["status"]})
        store.audit(target["id"], "tiles-test", "status", {"to": flag["status"]})


def test_zone_tiles_keep_every_zone_a_user_can_see(dense):
    """Zoomed out, zone tiles draw the zones' generalised copies (zone_bands): every zone of
    at least a pixel at that zoom is in the tile; zones under a pixel come back when zoomed in."""
    from redline import tiles
    from redline.store.core import zone_band

    store, zones = dense["store"], dense["zones"]
    for z in (6, 7, 8, 9, 10, 11, 12):
        ref = _tile_at(dense, z)
        body = tiles.render(store, "redline", ref, in_database=False)
        got = {g["id"]: g for g in mapbox_vector_tile.decode(body)["redline"]["features"]}
        box = shapely.box(*ref.lonlat_bounds())
        here = [zone for zone in zones if zone.geometry.intersects(box)]
        width = {zone.id: shapely.bounds(zone.geometry)[2] - shapely.bounds(zone.geometry)[0] for zone in here}
        seen = {i for i, w in width.items() if w >= 360.0 / (256 << z)}  # a screen pixel or more at z
        assert seen <= got.keys(), (z, sorted(seen - got.keys()))
        assert {g["properties"]["code"] for g in got.values()} <= {zone.code for zone in zones}
        # PostGIS: ST_AsMVT on the same copies (it keeps a few more slivers, never fewer zones)
        built = tiles.render(store, "redline", ref, in_database=True)
        built_ids = {g["id"] for g in mapbox_vector_tile.decode(built)["redline"]["features"]}
        assert seen <= built_ids, z
        band = zone_band(z)
        if band is not None:  # under a pixel (both ways) at the band's highest zoom: left out
            tiny = {i for i, w in width.items() if w < 0.7 * 360.0 / (256 << band)}
            assert not tiny & got.keys() and not tiny & built_ids, z
            assert tiny or z > 9  # the smallest zones are under a pixel up to zoom 9
        else:
            assert got.keys() == built_ids == set(width)
    smallest = min(zones, key=lambda zone: zone.geometry.area)
    p = smallest.geometry.centroid
    t = TMS.tile(p.x, p.y, 14)
    body = tiles.render(store, "redline", tiles.TileRef(14, t.x, t.y))
    assert smallest.id in {g["id"] for g in mapbox_vector_tile.decode(body)["redline"]["features"]}


@pytest.mark.parametrize("z", [6, 8, 10, 12, 14])
def test_tile_encoder_matches_the_library(dense, z):
    """The tiles' vectorised encoder (redline.tiles.encode) writes what mapbox-vector-tile's own
    encoder writes for the same features: ids, properties and geometries."""
    from redline import tiles

    store = dense["store"]
    holed = dense["zones"][0].geometry.representative_point()  # a zone with a hole, and parts
    flag = shapely.box(*store.flag(dense["flags"][0]["id"])["geometry"].bounds).centroid
    for cid, at in (("redline", holed), ("flags", flag)):
        t = TMS.tile(at.x, at.y, z)
        ref = tiles.TileRef(z, t.x, t.y)
        feats = tiles.zone_features(store, cid, ref) if cid == "redline" else tiles.flag_features(store, ref, None)
        assert feats
        lib_feats = [
            dict(f, geometry=shapely.Point(f["geometry"]) if isinstance(f["geometry"], tuple) else f["geometry"])
            for f in feats
        ]
        ours = mapbox_vector_tile.decode(tiles.encode(cid, feats))[cid]
        theirs = mapbox_vector_tile.decode(
            mapbox_vector_tile.encode(
                [{"name": cid, "features": lib_feats}],
                default_options={"extents": tiles.EXTENT, "y_coord_down": True, "check_winding_order": False},
            )
        )[cid]
        assert ours["extent"] == theirs["extent"] == tiles.EXTENT
        a, b = ({f["id"]: f for f in x["features"]} for x in (ours, theirs))
        assert a.keys() == b.keys() and len(a) == len(feats)
        for i in a:
            assert a[i]["properties"] == b[i]["properties"]
            ga, gb = (shapely.geometry.shape(x[i]["geometry"]) for x in (a, b))
            assert ga.geom_type == gb.geom_type
            assert ga.equals(gb) or ga.symmetric_difference(gb).area <= 1e-9 * max(gb.area, 1.0), (cid, i)


# what migration 0011 adds (a store rewound to before it must not have them)
FLAG_INDEXES_0011 = ("flags_severity", "flags_activity", "flags_last_seen", "flags_admin")


def test_migration_0009_generalises_loaded_layers(tmp_path, request):
    """Stores with layers loaded before 0009 get the zones' generalised copies by the upgrade."""
    from redline import tiles
    from redline.store.migrations import HEAD, upgrade

    for backend in BACKENDS:
        url = backend_url(request, backend, tmp_path)
        s = open_store(url)
        zones = [
            Zone("reserve", f"Z{i}", "core", shapely.Point(109 + i * 0.05, 40).buffer(0.02, 16), f"Z{i}", {})
            for i in range(5)
        ]
        s.add_layer_version(LoadReport("reserve", "m", "EPSG:4326", "-", 5, zones))
        s.close()
        if backend == "sqlite":
            import sqlite3

            db = sqlite3.connect(url.removeprefix("sqlite:///"))
            db.executescript(
                "DROP TABLE zone_tile_sets; DROP TABLE zone_tiles; DROP TABLE zone_bands;"
                + "".join(f" DROP INDEX {name};" for name in FLAG_INDEXES_0011)
                + " UPDATE alembic_version SET version_num = '0008'; PRAGMA user_version = 8;"
            )
            db.close()
        else:
            import psycopg

            with psycopg.connect(url) as conn:
                conn.execute("DROP TABLE zone_tile_sets, zone_tiles, zone_bands")
                conn.execute(f"DROP INDEX {', '.join(FLAG_INDEXES_0011)}")
                conn.execute("UPDATE alembic_version SET version_num = '0008'")
        assert upgrade(url) == ("0008", HEAD)
        s = open_store(url)
        try:
            for band in (7, 9, 11):
                rows = s.tile_zones("reserve", (108, 39, 111, 41), band)
                assert sorted(r["name"] for r in rows) == [f"Z{i}" for i in range(5)]
                assert all(len(r["geometry"].exterior.coords) <= 66 for r in rows)
            t = TMS.tile(109.1, 40, 6)
            body = tiles.render(s, "reserve", tiles.TileRef(6, t.x, t.y))
            assert len(mapbox_vector_tile.decode(body)["reserve"]["features"]) == 5
        finally:
            s.close()
