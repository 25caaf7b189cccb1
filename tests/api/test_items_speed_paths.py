"""The items answer through its fast paths, both stores, through the real app: a CQL2
S_INTERSECTS decided for the R*Tree's candidates at once (SQLite: a rectangle's inner boxes
taken without a test, the rest tested together; PostGIS: ST_Intersects), alone, negated and
combined; and the page's GeoJSON written in one go, the same features as the item endpoint."""

from __future__ import annotations

import json
from urllib.parse import quote

import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from api.app import create_app
from redline.auth import create_token
from redline.config import Settings
from redline.layers import LoadReport, Zone
from redline.store import open_store

from ..conftest import BACKENDS, backend_url
from ..rows import flag_row

EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
R = shapely.box(109.0, 40.0, 109.1, 40.1)  # the query rectangle
FLAG = flag_row(score=0.5, area_ha=1.5, area_mu=22.5, zone_name='红线 "甲"', admin_name="某乡")
SHAPES = {
    "inside": shapely.box(109.01, 40.01, 109.02, 40.02),
    # its box overlaps R's corner, the triangle itself stays outside: only the exact test drops it
    "corner_triangle": shapely.Polygon([(109.095, 40.115), (109.115, 40.095), (109.115, 40.115)]),
    "across_edge": shapely.box(109.09, 40.05, 109.11, 40.06),
    "touching_edge": shapely.box(109.1, 40.02, 109.11, 40.03),
    "outside": shapely.box(109.2, 40.2, 109.21, 40.21),
    "two_parts": shapely.MultiPolygon(
        [shapely.box(108.9, 39.9, 108.91, 39.91), shapely.box(109.05, 40.05, 109.06, 40.06)]
    ),
    "holed": shapely.box(108.98, 39.98, 109.12, 40.12).difference(shapely.box(108.99, 39.99, 109.11, 40.11)),
}


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    url = backend_url(request, request.param, out)
    store = open_store(url)
    rng = np.random.default_rng(3)
    with store.transaction():
        for i, shape in enumerate(SHAPES.values()):
            store.insert_flag(dict(FLAG, severity=("low", "critical")[i % 2]), shape)
        for i in range(300):  # around R, many on its edges
            x, y = rng.uniform(108.95, 109.15), rng.uniform(39.95, 40.15)
            w = rng.uniform(0.0005, 0.01)
            shape = shapely.box(x, y, x + w, y + w) if i % 3 else shapely.Point(x, y).buffer(w, 4)
            store.insert_flag(dict(FLAG, severity=("low", "medium", "high", "critical")[i % 4]), shape)
    zones = [
        Zone("redline", f"RL-{i}", "redline", shape, f"C{i}", {}, area_ha=1.0)
        for i, shape in enumerate(SHAPES.values())
    ]
    store.add_layer_version(LoadReport("redline", "speed", "EPSG:4326", "-", len(zones), zones))
    token = create_token(store, "root", "admin")
    shapes = {f["id"]: f["geometry"] for f in store.flags()}
    severity = {f["id"]: f["severity"] for f in store.flags(with_geometry=False)}
    zone_shapes = {z.id: z.geometry for z in store.zones(("redline",))}
    store.close()
    settings = Settings(database_url=url, data_dir=out, evidence_dir=out / "evidence")
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield {"client": client, "shapes": shapes, "severity": severity, "zones": zone_shapes}


def _items(client, query: str, cid: str = "flags") -> dict:
    r = client.get(f"/collections/{cid}/items?limit=1000&{query}")
    assert r.status_code == 200, r.text
    return r.json()


def _truth(shapes: dict, geom) -> list[int]:
    return sorted(i for i, g in shapes.items() if g.intersects(geom))


QUERIES = {
    "rectangle": R,
    "rectangle_drawn_otherwise": shapely.Polygon(
        [(109.1, 40.1), (109.0, 40.1), (109.0, 40.05), (109.0, 40.0), (109.1, 40.0)]
    ),
    "triangle": shapely.Polygon([(109.0, 40.0), (109.1, 40.0), (109.0, 40.1)]),
    "l_shape": shapely.Polygon(
        [(109.0, 40.0), (109.1, 40.0), (109.1, 40.03), (109.03, 40.03), (109.03, 40.1), (109.0, 40.1)]
    ),
    "holed": shapely.box(109.0, 40.0, 109.1, 40.1).difference(shapely.box(109.02, 40.02, 109.08, 40.08)),
    "two_rectangles": shapely.MultiPolygon(
        [shapely.box(109.0, 40.0, 109.02, 40.02), shapely.box(109.08, 40.08, 109.1, 40.1)]
    ),
    "line": shapely.LineString([(108.95, 39.95), (109.15, 40.15)]),
    "point": shapely.Point(109.015, 40.015),
}


@pytest.mark.parametrize("name", QUERIES)
def test_s_intersects_is_exact(env, name):
    client, shapes, geom = env["client"], env["shapes"], QUERIES[name]
    want = _truth(shapes, geom)
    assert want and len(want) < len(shapes)
    got = _items(client, "filter=" + quote(f"S_INTERSECTS(geometry, {geom.wkt})"))
    assert sorted(f["id"] for f in got["features"]) == want
    assert got["numberMatched"] == len(want)
    # negated, and with another condition
    got = _items(client, "filter=" + quote(f"NOT S_INTERSECTS(geometry, {geom.wkt})"))
    assert sorted(f["id"] for f in got["features"]) == sorted(set(shapes) - set(want))
    text = f"S_INTERSECTS(geometry, {geom.wkt}) AND severity = 'critical'"
    got = _items(client, "filter=" + quote(text))
    assert sorted(f["id"] for f in got["features"]) == [i for i in want if env["severity"][i] == "critical"]


def test_the_exact_test_decides_at_the_edges(env):
    """R's box holds flags R does not touch (the corner triangle, the holed ring's box): the
    rectangle shortcut takes only boxes inside R, the rest is tested."""
    ids = {name: i + 1 for i, name in enumerate(SHAPES)}  # inserted first, in this order
    got = {f["id"] for f in _items(env["client"], "filter=" + quote(f"S_INTERSECTS(geometry, {R.wkt})"))["features"]}
    assert {ids[n] for n in ("inside", "across_edge", "touching_edge", "two_parts")} <= got
    assert not {ids[n] for n in ("corner_triangle", "outside", "holed")} & got


def test_paging_a_spatial_filter(env):
    """numberMatched on every page: counted, unless a first page holds every match."""
    client, want = env["client"], _truth(env["shapes"], R)
    flt = "filter=" + quote(f"S_INTERSECTS(geometry, {R.wkt})")
    seen, after = [], None
    while True:
        page = client.get(f"/collections/flags/items?limit=7&{flt}" + (f"&after={after}" if after else "")).json()
        assert page["numberMatched"] == len(want)
        seen += [f["id"] for f in page["features"]]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        after = seen[-1]
    assert seen == want
    by_offset = _items(client, f"{flt}&sortby=-id&offset=3")  # the rest on one page: still counted whole
    assert [f["id"] for f in by_offset["features"]] == sorted(want, reverse=True)[3:]
    assert by_offset["numberMatched"] == len(want)
    zones = _items(client, "offset=2", "redline")
    assert zones["numberMatched"] == len(env["zones"]) == zones["numberReturned"] + 2


def test_zone_collections_take_the_same_spatial_test(env):
    for geom in (R, QUERIES["triangle"], QUERIES["line"]):
        want = _truth(env["zones"], geom)
        got = _items(env["client"], "filter=" + quote(f"S_INTERSECTS(geometry, {geom.wkt})"), "redline")
        assert sorted(f["id"] for f in got["features"]) == want


@pytest.mark.parametrize("crs", [None, EPSG4490])
def test_a_page_holds_the_features_of_the_item_endpoint(env, crs):
    client = env["client"]
    extra = f"&crs={quote(crs)}" if crs else ""
    r = client.get(f"/collections/flags/items?limit=1000&filter={quote(f'S_INTERSECTS(geometry, {R.wkt})')}{extra}")
    assert r.status_code == 200
    page = json.loads(r.content)
    assert len(page["features"]) == len(_truth(env["shapes"], R))
    for feature in page["features"]:
        one = client.get(f"/collections/flags/items/{feature['id']}" + (f"?crs={quote(crs)}" if crs else ""))
        assert one.status_code == 200
        assert feature == one.json()
        assert feature["geometry"]["type"] == "MultiPolygon"
