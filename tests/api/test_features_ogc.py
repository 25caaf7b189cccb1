"""OGC API – Features Part 1 (unknown parameters, MultiPolygon, extents), Part 2 (crs, bbox-crs,
Content-Crs, axis order) and Part 3 (queryables, CQL2 text and JSON, sortby), through the real
app on both stores; jurisdiction always applies on top of a filter."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import shapely

from .conftest import XIN, YIHE, assert_problem

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG4490 = "http://www.opengis.net/def/crs/EPSG/0/4490"
COLLECTIONS = ("flags", "redline", "reserve", "permit", "admin", "control")


def _items(client, h, query: str = "", cid: str = "flags") -> dict:
    r = client.get(f"/collections/{cid}/items?limit=1000" + (f"&{query}" if query else ""), headers=h)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(client, h, query: str = "", cid: str = "flags") -> list[int]:
    return [f["id"] for f in _items(client, h, query, cid)["features"]]


def _cql(text: str) -> str:
    return "filter=" + quote(text)


@pytest.fixture(scope="module")
def flags(env):
    h = {"Authorization": f"Bearer {env['tokens']['admin']}"}
    return {f["id"]: f for f in env["client"].get("/collections/flags/items?limit=1000", headers=h).json()["features"]}


# --- Part 1 ------------------------------------------------------------------------------


def test_unknown_parameters_are_400_naming_them(client, auth):
    h = auth("viewer")
    assert_problem(client.get("/collections/flags/items?colour=red", headers=h), 400, "'colour'")
    assert_problem(client.get("/collections/redline/items?status=new", headers=h), 400, "'status'")
    assert_problem(client.get("/collections/flags/items?f=html", headers=h), 400, "f=")
    assert_problem(client.get("/collections/flags/items/1?limit=3", headers=h), 400, "'limit'")
    assert_problem(client.get("/collections?x=1", headers=h), 400, "'x'")
    assert client.get("/collections/flags/items?f=json", headers=h).status_code == 200


def test_every_geometry_is_a_multipolygon(client, auth):
    h = auth("viewer")
    for cid in COLLECTIONS:
        features = _items(client, h, cid=cid)["features"]
        assert features, cid
        assert {f["geometry"]["type"] for f in features} == {"MultiPolygon"}, cid
        one = client.get(f"/collections/{cid}/items/{features[0]['id']}", headers=h).json()
        assert one["geometry"]["type"] == "MultiPolygon"


def test_extents_come_from_the_data(client, auth, flags):
    h = auth("viewer")
    listed = {c["id"]: c for c in client.get("/collections", headers=h).json()["collections"]}
    assert tuple(listed) == COLLECTIONS
    for cid in COLLECTIONS:
        c = client.get(f"/collections/{cid}", headers=h).json()
        assert c["extent"] == listed[cid]["extent"] and CRS84 in c["crs"] and EPSG4490 in c["crs"]
        feats = _items(client, h, cid=cid)["features"]
        bounds = shapely.MultiPolygon([p for f in feats for p in shapely.geometry.shape(f["geometry"]).geoms]).bounds
        box = c["extent"]["spatial"]["bbox"][0]
        assert box == pytest.approx(list(bounds), abs=1e-4), cid  # an index's box may be float32, rounded out
        assert box[0] <= bounds[0] and box[1] <= bounds[1] and box[2] >= bounds[2] and box[3] >= bounds[3], cid
    props = [f["properties"] for f in flags.values()]
    interval = listed["flags"]["extent"]["temporal"]["interval"][0]
    assert interval[0][:10] == min(p["first_seen"] for p in props)
    assert interval[1][:10] == max(p["last_seen"] for p in props)
    # an inspector's extent is the extent of what they may see
    mine = [shapely.geometry.shape(f["geometry"]) for f in flags.values() if f["properties"]["admin_code"] == YIHE]
    c = client.get("/collections/flags", headers=auth("inspector_yihe")).json()
    assert c["extent"]["spatial"]["bbox"][0] == pytest.approx(list(shapely.union_all(mine).bounds), abs=1e-4)


# --- Part 3: queryables, filter, sortby ---------------------------------------------------


def test_queryables_are_json_schema(client, auth):
    h = auth("viewer")
    r = client.get("/collections/flags/queryables", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    doc = r.json()
    assert doc["type"] == "object" and doc["$id"].endswith("/collections/flags/queryables")
    p = doc["properties"]
    assert p["severity"]["enum"] == ["low", "medium", "high", "critical"]
    assert p["last_seen"] == {"title": "last_seen", "type": "string", "format": "date"}
    assert p["area_ha"]["type"] == "number" and p["geometry"]["x-ogc-role"] == "primary-geometry"
    assert "regime" in client.get("/collections/reserve/queryables", headers=h).json()["properties"]
    assert_problem(client.get("/collections/roads/queryables", headers=h), 404)


def _expected(flags, pred) -> list[int]:
    return sorted(fid for fid, f in flags.items() if pred(f["properties"]))


def test_cql2_text_operators(client, auth, flags):
    h = auth("admin")
    cases = {
        "severity = 'critical'": lambda p: p["severity"] == "critical",
        "severity <> 'critical'": lambda p: p["severity"] is not None and p["severity"] != "critical",
        "severity IN ('high', 'critical')": lambda p: p["severity"] in ("high", "critical"),
        "severity NOT IN ('high', 'critical')": lambda p: p["severity"] not in ("high", "critical", None),
        "area_ha BETWEEN 1 AND 5": lambda p: 1 <= p["area_ha"] <= 5,
        "area_ha > 2.5 AND NOT activity = 'mining'": lambda p: p["area_ha"] > 2.5 and p["activity"] != "mining",
        "activity = 'transport' OR n_observations >= 2": lambda p: (
            p["activity"] == "transport" or p["n_observations"] >= 2
        ),
        "admin_name LIKE '锡%'": lambda p: (p["admin_name"] or "").startswith("锡"),
        "zone_name IS NULL": lambda p: p["zone_name"] is None,
        "severity IS NOT NULL": lambda p: p["severity"] is not None,
        "last_seen >= DATE('2026-09-01')": lambda p: p["last_seen"] >= "2026-09-01",
        "first_seen < DATE('2026-07-01')": lambda p: p["first_seen"] < "2026-07-01",
        "last_seen T_AFTER DATE('2026-08-31')": lambda p: p["last_seen"] > "2026-08-31",
        "first_seen T_BEFORE DATE('2026-07-01')": lambda p: p["first_seen"] < "2026-07-01",
        "created_at > TIMESTAMP('2000-01-01T00:00:00Z')": lambda p: True,
        "created_at < TIMESTAMP('2000-01-01T00:00:00Z')": lambda p: False,
    }
    for text, pred in cases.items():
        assert sorted(_ids(client, h, _cql(text))) == _expected(flags, pred), text
    assert any(_expected(flags, pred) for pred in cases.values())
    # the same as the plain parameters
    assert sorted(_ids(client, h, _cql("severity IN ('high','critical')"))) == sorted(
        _ids(client, h, "severity=high&severity=critical")
    )
    assert _items(client, h, _cql("severity = 'critical'"))["numberMatched"] == len(
        _expected(flags, lambda p: p["severity"] == "critical")
    )


def test_cql2_spatial_and_json(client, auth, flags, env):
    h = auth("admin")
    road = next(p for p in env["truth"]["patches"] if p["name"] == "road_seam")["centroid_lonlat"]
    box = shapely.box(road[0] - 0.02, road[1] - 0.02, road[0] + 0.02, road[1] + 0.02)
    near = _expected(flags, lambda p: True)
    near = sorted(i for i in near if shapely.geometry.shape(flags[i]["geometry"]).intersects(box))
    assert 0 < len(near) < len(flags)
    assert sorted(_ids(client, h, _cql(f"S_INTERSECTS(geometry, {box.wkt})"))) == near
    as_json = {
        "op": "and",
        "args": [
            {"op": "s_intersects", "args": [{"property": "geometry"}, shapely.geometry.mapping(box)]},
            {"op": "in", "args": [{"property": "severity"}, ["low", "medium", "high", "critical"]]},
        ],
    }
    got = _ids(client, h, f"filter-lang=cql2-json&filter={quote(json.dumps(as_json))}")
    assert sorted(got) == [i for i in near if flags[i]["properties"]["severity"] is not None]
    # a geometry given in EPSG:4490 (lat first)
    lat_first = shapely.transform(box, lambda xy: xy[:, ::-1])
    got = _ids(client, h, _cql(f"S_INTERSECTS(geometry, {lat_first.wkt})") + f"&filter-crs={quote(EPSG4490)}")
    assert sorted(got) == near


def test_filter_on_zone_collections(client, auth):
    h = auth("viewer")
    reserve = _items(client, h, cid="reserve")["features"]
    core = sorted(f["id"] for f in reserve if f["properties"]["regime"] == "core")
    assert core and sorted(_ids(client, h, _cql("regime = 'core'"), cid="reserve")) == core
    first = reserve[0]["properties"]["name"]
    assert reserve[0]["id"] in _ids(client, h, _cql(f"name LIKE '{first[:1]}%'"), cid="reserve")


def test_jurisdiction_applies_on_top_of_a_filter(client, auth, flags):
    h = auth("inspector_yihe")
    assert _ids(client, h, _cql(f"admin_code = '{XIN}'")) == []
    got = _ids(client, h, _cql(f"admin_code = '{XIN}' OR severity IS NULL OR severity IS NOT NULL"))
    assert got and {flags[i]["properties"]["admin_code"] for i in got} == {YIHE}


def test_bad_filters_are_400(client, auth):
    h = auth("viewer")
    for text in (
        "colour = 'red'",
        "severity = ",
        "severity = 3",
        "area_ha = 'big'",
        "geometry = 'x'",
        "last_seen > DATE('yesterday')",
    ):
        assert_problem(client.get("/collections/flags/items?" + _cql(text), headers=h), 400)
    assert_problem(client.get("/collections/flags/items?filter-lang=sql&" + _cql("1=1"), headers=h), 422, "filter-lang")
    assert_problem(client.get("/collections/flags/items?filter-lang=cql2-json&filter={nope", headers=h), 400)
    assert_problem(client.get("/collections/flags/items?filter-lang=cql2-text", headers=h), 400, "filter")


def test_sortby(client, auth, flags):
    h = auth("admin")
    got = _ids(client, h, "sortby=-area_ha")
    assert got == sorted(flags, key=lambda i: (-flags[i]["properties"]["area_ha"], i))
    rank = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    got = _ids(client, h, "sortby=-severity,%2Bid")
    sev = [flags[i]["properties"]["severity"] for i in got]
    assert [s for s in sev if s] == sorted([s for s in sev if s], key=lambda s: -rank[s])
    assert sev[-1] is None or None not in sev  # NULLs last
    # paging with sortby: offset links, every flag once
    url, seen = "/collections/flags/items?limit=3&sortby=last_seen", []
    while url:
        page = client.get(url, headers=h).json()
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0].split("testserver", 1)[1] if nxt else None
    assert sorted(seen) == sorted(flags) and len(seen) == len(flags)
    assert [flags[i]["properties"]["last_seen"] for i in seen] == sorted(
        f["properties"]["last_seen"] for f in flags.values()
    )
    zones = _items(client, h, "sortby=-name", cid="redline")["features"]
    assert [z["properties"]["name"] for z in zones] == sorted((z["properties"]["name"] for z in zones), reverse=True)
    assert_problem(client.get("/collections/flags/items?sortby=colour", headers=h), 400, "colour")
    assert_problem(client.get("/collections/flags/items?sortby=geometry", headers=h), 400)
    assert_problem(client.get("/collections/flags/items?sortby=id&after=3", headers=h), 400, "offset")


# --- Part 2: CRS --------------------------------------------------------------------------


def test_crs_content_crs_and_axis_order(client, auth, flags):
    h = auth("viewer")
    r = client.get("/collections/flags/items?limit=1000", headers=h)
    assert r.headers["content-crs"] == f"<{CRS84}>"
    lonlat = {f["id"]: f["geometry"]["coordinates"][0][0][0] for f in r.json()["features"]}
    r = client.get(f"/collections/flags/items?limit=1000&crs={quote(EPSG4490)}", headers=h)
    assert r.status_code == 200 and r.headers["content-crs"] == f"<{EPSG4490}>"
    for f in r.json()["features"]:
        lat, lon = f["geometry"]["coordinates"][0][0][0]
        assert 35 < lat < 45 and 100 < lon < 115  # latitude first, as EPSG:4490 defines it
        assert (lon, lat) == pytest.approx(tuple(lonlat[f["id"]]), abs=1e-6)  # CGCS2000 ~ WGS 84 here
    fid = next(iter(flags))
    one = client.get(f"/collections/flags/items/{fid}?crs={quote(EPSG4490)}", headers=h)
    assert one.headers["content-crs"] == f"<{EPSG4490}>" and one.json()["geometry"]["coordinates"][0][0][0][0] < 45
    assert_problem(client.get("/collections/flags/items?crs=EPSG:3857", headers=h), 400, "not offered")
    assert_problem(client.get("/collections/flags/items?crs=nonsense", headers=h), 400, "crs")


def test_bbox_crs(client, auth, env):
    h = auth("viewer")
    road = next(p for p in env["truth"]["patches"] if p["name"] == "road_seam")["centroid_lonlat"]
    lon0, lat0, lon1, lat1 = road[0] - 0.02, road[1] - 0.02, road[0] + 0.02, road[1] + 0.02
    plain = _ids(client, h, f"bbox={lon0},{lat0},{lon1},{lat1}")
    assert plain
    crs84 = _ids(client, h, f"bbox={lon0},{lat0},{lon1},{lat1}&bbox-crs={quote(CRS84)}")
    cgcs = _ids(client, h, f"bbox={lat0},{lon0},{lat1},{lon1}&bbox-crs={quote(EPSG4490)}")
    assert plain == crs84 == cgcs
    assert_problem(client.get(f"/collections/flags/items?bbox-crs={quote(EPSG4490)}", headers=h), 400, "bbox")
