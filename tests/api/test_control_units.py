"""Environmental control units (环境管控单元, three lines one list) as an OGC API collection and
as vector tiles, on both stores: the sample scenario's three units (scripts/make_sample_data.py
CONTROL_UNITS), loaded by tests/scenario.py as scripts/demo.sh loads them."""

from __future__ import annotations

from urllib.parse import quote

import mapbox_vector_tile
import morecantile
import pytest
import shapely
from typer.testing import CliRunner

from redline import tiles, vocab
from redline.cli import app as cli
from redline.store import open_store
from redline.vocab import CONTROL_REGIMES

from ..scenario import ROOT
from .conftest import assert_problem

TMS = morecantile.tms.get("WebMercatorQuad")
MVT = "application/vnd.mapbox-vector-tile"
UNITS = {  # code: (name, type)
    "ZH15062510001": ("库布其沙漠优先保护单元", "priority_protection_unit"),
    "ZH15062520001": ("独贵塔拉工业园区重点管控单元", "key_control_unit"),
    "ZH15062530001": ("杭锦旗一般管控单元", "general_control_unit"),
}


def _items(client, h, query: str = "") -> dict:
    r = client.get("/collections/control/items" + (f"?{query}" if query else ""), headers=h)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    return r.json()


def _tile(client, h, t) -> list[dict]:
    r = client.get(f"/collections/control/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}", headers=h)
    if r.status_code == 204:
        return []
    assert r.status_code == 200 and r.headers["content-type"] == MVT, r.text
    layers = mapbox_vector_tile.decode(r.content)
    assert list(layers) == ["control"]
    return layers["control"]["features"]


def _all_units_tile(units: list[dict], zoom: int) -> morecantile.Tile:
    """The tile of the highest zoom up to ``zoom`` that holds every unit."""
    box = shapely.GeometryCollection([shapely.geometry.shape(u["geometry"]) for u in units]).bounds
    for z in range(zoom, 0, -1):
        a, b = TMS.tile(box[0], box[3], z), TMS.tile(box[2], box[1], z)
        if (a.x, a.y) == (b.x, b.y):
            return a
    raise AssertionError("no tile holds every unit")


def test_the_collection_is_listed_with_its_extent_from_the_data(client, auth):
    h = auth("viewer")
    listed = {c["id"]: c for c in client.get("/collections", headers=h).json()["collections"]}
    c = client.get("/collections/control", headers=h).json()
    assert c == listed["control"]
    assert "环境管控单元" in c["description"] and "key_control_unit" in c["description"]
    rels = {link["rel"] for link in c["links"]}
    assert {"items", "http://www.opengis.net/def/rel/ogc/1.0/queryables"} <= rels
    units = _items(client, h)["features"]
    bounds = shapely.MultiPolygon([p for u in units for p in shapely.geometry.shape(u["geometry"]).geoms]).bounds
    assert c["extent"]["spatial"]["bbox"][0] == pytest.approx(list(bounds), abs=1e-4)


def test_items_and_one_item(client, auth):
    h = auth("viewer")
    fc = _items(client, h)
    assert fc["numberMatched"] == fc["numberReturned"] == 3
    got = {f["properties"]["code"]: f for f in fc["features"]}
    assert {code: (f["properties"]["name"], f["properties"]["regime"]) for code, f in got.items()} == UNITS
    assert {f["properties"]["layer"] for f in fc["features"]} == {"control"}
    one = got["ZH15062520001"]
    again = client.get(f"/collections/control/items/{one['id']}", headers=h)
    assert again.status_code == 200 and again.json()["properties"] == one["properties"]
    assert again.json()["geometry"]["type"] == "MultiPolygon"
    # EPSG:4490 (CGCS2000) is latitude first
    lat_first = client.get(
        f"/collections/control/items/{one['id']}?crs=http://www.opengis.net/def/crs/EPSG/0/4490", headers=h
    )
    assert lat_first.headers["content-crs"] == "<http://www.opengis.net/def/crs/EPSG/0/4490>"
    x, y = lat_first.json()["geometry"]["coordinates"][0][0][0]
    lon, lat = one["geometry"]["coordinates"][0][0][0]
    assert (x, y) == pytest.approx((lat, lon), abs=1e-6)
    assert_problem(client.get("/collections/control/items/999999", headers=h), 404)
    assert_problem(client.get("/collections/control/items?status=new", headers=h), 400, "'status'")


def test_queryables_filters_sortby_and_bbox(client, auth):
    h = auth("viewer")
    q = client.get("/collections/control/queryables", headers=h)
    assert q.headers["content-type"].startswith("application/schema+json")
    assert {"name", "regime", "code", "geometry"} <= set(q.json()["properties"])
    # the unit types are a closed list, said in the schema (a client offers them as choices)
    assert q.json()["properties"]["regime"]["enum"] == list(vocab.CONTROL_REGIMES)
    reserve = client.get("/collections/reserve/queryables", headers=h).json()["properties"]["regime"]
    assert reserve["enum"] == list(vocab.RESERVE_REGIMES)
    assert "enum" not in client.get("/collections/permit/queryables", headers=h).json()["properties"]["regime"]
    key = _items(client, h, "filter=" + quote("regime = 'key_control_unit'"))["features"]
    assert [f["properties"]["code"] for f in key] == ["ZH15062520001"]
    json_filter = '{"op":"in","args":[{"property":"regime"},["priority_protection_unit","general_control_unit"]]}'
    both = _items(client, h, "filter-lang=cql2-json&filter=" + quote(json_filter))
    assert sorted(f["properties"]["code"] for f in both["features"]) == ["ZH15062510001", "ZH15062530001"]
    assert both["numberMatched"] == 2
    like = _items(client, h, "filter=" + quote("name LIKE '%工业园区%'"))["features"]
    assert [f["properties"]["code"] for f in like] == ["ZH15062520001"]
    ordered = _items(client, h, "sortby=-code")["features"]
    assert [f["properties"]["code"] for f in ordered] == sorted(UNITS, reverse=True)
    # a box around a point inside the key control unit only
    inside = shapely.geometry.shape(key[0]["geometry"]).representative_point()
    box = f"{inside.x - 1e-4},{inside.y - 1e-4},{inside.x + 1e-4},{inside.y + 1e-4}"
    assert [f["properties"]["code"] for f in _items(client, h, f"bbox={box}")["features"]] == ["ZH15062520001"]
    assert_problem(client.get("/collections/control/items?filter=" + quote("colour = 'red'"), headers=h), 400)


def test_tileset_documents_list_control(client, auth):
    h = auth("viewer")
    assert client.get("/collections/control/tiles", headers=h).json()["tilesets"][0]["dataType"] == "vector"
    ts = client.get("/collections/control/tiles/WebMercatorQuad", headers=h).json()
    assert ts["tiles"] == ["http://testserver/collections/control/tiles/WebMercatorQuad/{z}/{y}/{x}"]
    (layer,) = ts["vector_layers"]
    assert layer["id"] == "control" and {"id", "name", "regime", "code"} <= set(layer["fields"])
    assert "环境管控单元" in ts["description"]


def test_tiles_hold_the_units_with_their_codes(client, auth):
    h = auth("viewer")
    units = _items(client, h)["features"]
    for u in units:
        p = shapely.geometry.shape(u["geometry"]).representative_point()
        got = {g["id"]: g for g in _tile(client, h, TMS.tile(p.x, p.y, 14))}
        assert u["id"] in got
        props = got[u["id"]]["properties"]
        assert {k: props[k] for k in ("id", "name", "regime", "code")} == {
            "id": u["id"],
            **{k: u["properties"][k] for k in ("name", "regime", "code")},
        }
        assert got[u["id"]]["geometry"]["type"] in ("Polygon", "MultiPolygon")
    # zoomed out: one tile of the pre-rendered zooms holds all three, read from zone_tiles
    t = _all_units_tile(units, tiles.PRERENDER_ZOOM)
    feats = _tile(client, h, t)
    assert {g["properties"]["code"] for g in feats} == set(UNITS)
    assert {g["properties"]["regime"] for g in feats} == set(CONTROL_REGIMES)
    store = open_store(client.app.state.settings.database_url)
    try:
        kept = store.zone_tile("control", t.z, t.x, t.y, tiles.ZONE_TILE_RULES)
    finally:
        store.close()
    assert kept, "the layer load pre-rendered the control unit tiles"
    assert mapbox_vector_tile.decode(kept)["control"]["features"] == feats
    # a CQL2 filter applies to the tiles as to the items
    r = client.get(
        f"/collections/control/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}?filter=" + quote("regime = 'key_control_unit'"),
        headers=h,
    )
    assert {g["properties"]["code"] for g in mapbox_vector_tile.decode(r.content)["control"]["features"]} == {
        "ZH15062520001"
    }


def test_database_tiles_match_the_engine(client, auth):
    """PostGIS builds the control unit tiles with ST_AsMVT: the same features as the engine's encoder."""
    units = _items(client, auth("viewer"))["features"]
    refs = [_all_units_tile(units, z) for z in (5, 9)]
    for u in units:
        p = shapely.geometry.shape(u["geometry"]).representative_point()
        refs.append(TMS.tile(p.x, p.y, 13))
    store = open_store(client.app.state.settings.database_url)
    try:
        for t in refs:
            ref = tiles.TileRef(t.z, t.x, t.y)
            a, b = (tiles.render(store, "control", ref, in_database=d) for d in (True, False))
            fa, fb = (
                {g["id"]: g["properties"] for g in mapbox_vector_tile.decode(x)["control"]["features"]} for x in (a, b)
            )
            assert fa == fb and len(fa) >= 1, ref
    finally:
        store.close()


def test_a_new_control_layer_version_changes_the_etag(env, client, auth):
    h = auth("viewer")
    units = _items(client, h)["features"]
    p = shapely.geometry.shape(units[0]["geometry"]).representative_point()
    t = TMS.tile(p.x, p.y, 10)
    url = f"/collections/control/tiles/WebMercatorQuad/{t.z}/{t.y}/{t.x}"
    tag = client.get(url, headers=h).headers["etag"]
    assert client.get(url, headers=h | {"If-None-Match": tag}).status_code == 304
    # the red-line tiles do not depend on the control units
    red = client.get(url.replace("/control/", "/redline/"), headers=h).headers["etag"]
    fields = ["--mapping", str(ROOT / "sample_data" / "mapping.toml")]
    r = CliRunner().invoke(
        cli, ["--db", env["url"], "layers", "load", "control", str(env["out"] / "control_units.gpkg"), *fields]
    )
    assert r.exit_code == 0, r.output
    new = client.get(url, headers=h | {"If-None-Match": tag})
    assert new.status_code == 200 and new.headers["etag"] != tag
    assert {g["properties"]["code"] for g in mapbox_vector_tile.decode(new.content)["control"]["features"]} == set(
        UNITS
    )
    assert client.get(url.replace("/control/", "/redline/"), headers=h | {"If-None-Match": red}).status_code == 304
    newer = _items(client, h)
    assert newer["numberMatched"] == 3 and {f["properties"]["layer_version"] for f in newer["features"]} == {
        max(u["properties"]["layer_version"] for u in units) + 1
    }
