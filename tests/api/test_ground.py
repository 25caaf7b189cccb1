"""Ground reports through the API: POST /reports/ground (multipart), and where they show up."""

from __future__ import annotations

import csv
import json

from redline.store import open_store

from .conftest import XIN, assert_problem

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"


def _places(env) -> dict:
    """Points of the sample lead file: XS-2026-0002 and -0003 lie in red lines of XIN, clear of
    every flag; XS-2026-0001 on the scanned farmland flag in YIHE."""
    with (env["out"] / "national_leads.csv").open(encoding="utf-8") as f:
        return {r["线索编号"]: (float(r["经度"]), float(r["纬度"])) for r in csv.DictReader(f)}


def _point(lon, lat) -> str:
    return json.dumps({"type": "Point", "coordinates": [lon, lat]})


def _report(client, headers, geometry, photos=(), **form):
    data = {"geometry": geometry, "activity": "采矿", "note": "excavators digging sand", **form}
    files = [("photos", (f"p{i}.jpg", content, "image/jpeg")) for i, content in enumerate(photos)]
    return client.post("/reports/ground", headers=headers, data=data, files=files or None)


def _count(env) -> tuple[int, int]:
    store = open_store(env["url"])
    try:
        flags = store.flags(with_geometry=False)
        return len(flags), sum(f["n_observations"] for f in flags)
    finally:
        store.close()


def test_a_ground_report_becomes_a_flag_seen_everywhere(env, client, auth):
    lon, lat = _places(env)["XS-2026-0002"]
    h = auth("inspector")
    r = _report(client, h, _point(lon, lat), photos=[JPEG, JPEG], ref="HOTLINE-12345", observed_on="2026-09-01")
    assert r.status_code == 201, r.text
    out = r.json()
    assert (out["new"], out["status"], out["source_ref"], len(out["evidence"])) == (True, "new", "HOTLINE-12345", 2)
    fid = out["flag_id"]
    flag = client.get(f"/flags/{fid}", headers=h).json()
    assert (flag["source"], flag["source_ref"], flag["activity"], flag["admin_code"]) == (
        "ground",
        "HOTLINE-12345",
        "mining",
        XIN,
    )
    assert flag["zone_layer"] == "redline" and flag["severity"] and flag["first_seen"] == "2026-09-01"
    assert [(o["source"], o["scan_id"]) for o in flag["observations"]] == [("ground", None)]
    evidence = client.get(f"/flags/{fid}/evidence", headers=h).json()
    assert [e["id"] for e in evidence] == out["evidence"] and {e["lon"] for e in evidence} == {round(lon, 7)}
    created = client.get(f"/flags/{fid}/history", headers=h).json()[0]
    assert (created["actor"], created["action"], created["detail"]["source"]) == ("i", "created", "ground")
    assert created["detail"]["note"] == "excavators digging sand"
    # items (CQL2 on source), exports, stats
    items = client.get("/collections/flags/items?filter=source='ground'&limit=100", headers=h).json()["features"]
    assert fid in [f["id"] for f in items] and {f["properties"]["source"] for f in items} == {"ground"}
    exported = client.get("/exports?format=geojson", headers=auth("analyst")).json()["features"]
    assert [f["properties"]["source_ref"] for f in exported if f["properties"]["id"] == fid] == ["HOTLINE-12345"]
    groups = client.get("/stats?group_by=source", headers=auth("analyst")).json()["groups"]
    assert {g["source"] for g in groups} >= {"scan", "ground"}
    # the same workflow, and the ledger shows the source
    for status in ("dispatched", "verified_violation"):
        assert client.patch(f"/flags/{fid}", json={"status": status}, headers=h).status_code == 200
    rows = client.get("/ledger", headers=h).json()["items"]
    assert [r["source"] for r in rows if r["id"] == fid] == ["ground"]
    # a second report on the same place observes the flag: no duplicate
    before = _count(env)
    r = _report(client, auth("admin"), _point(lon + 0.0001, lat))
    assert r.status_code == 201, r.text
    assert (r.json()["flag_id"], r.json()["new"]) == (fid, False)
    assert _count(env) == (before[0], before[1] + 1)


def test_a_ground_report_on_a_scanned_flag_is_an_observation_of_it(env, client, auth):
    lon, lat = _places(env)["XS-2026-0001"]  # on the farmland flag, in YIHE
    polygon = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[lon - 2e-4, lat - 2e-4], [lon + 2e-4, lat - 2e-4], [lon + 2e-4, lat + 2e-4], [lon, lat]]],
        },
    }
    polygon["geometry"]["coordinates"][0].append(polygon["geometry"]["coordinates"][0][0])
    before = _count(env)
    r = _report(client, auth("inspector_yihe"), json.dumps(polygon), activity="开垦")
    assert r.status_code == 201, r.text
    fid = r.json()["flag_id"]
    flag = client.get(f"/flags/{fid}", headers=auth("inspector_yihe")).json()
    assert r.json()["new"] is False and flag["source"] == "scan" and flag["activity"] == "farmland"
    assert [o["source"] for o in flag["observations"]][-1] == "ground"
    assert _count(env) == (before[0], before[1] + 1)


def test_an_inspector_cannot_report_outside_the_jurisdiction(env, client, auth):
    places = _places(env)
    before = _count(env)
    # a XIN place reported by the YIHE inspector; the YIHE farmland flag by the XIN inspector
    for role, (lon, lat) in (("inspector_yihe", places["XS-2026-0003"]), ("inspector", places["XS-2026-0001"])):
        r = _report(client, auth(role), _point(lon, lat), photos=[JPEG])
        assert_problem(r, 403, "outside your jurisdiction")
    assert _count(env) == before
    assert_problem(_report(client, auth("viewer"), _point(*places["XS-2026-0003"])), 403, "may not")
    assert_problem(_report(client, {}, _point(*places["XS-2026-0003"])), 401)
    assert _count(env) == before


def test_bad_reports_are_422_and_write_nothing(env, client, auth):
    h, (lon, lat) = auth("admin"), _places(env)["XS-2026-0003"]
    before = _count(env)
    cases = [
        (_point(lon, lat), {"photos": [b"<html>not a photo</html>"]}, "unsupported file type"),
        ("{not json", {}, "not valid JSON"),
        (_point(lon, 123.0), {}, "not longitude/latitude"),
        (json.dumps({"type": "Point", "coordinates": [lon, None]}), {}, "invalid GeoJSON"),
        (_point(lon, lat), {"activity": "juggling"}, ""),
        (_point(lon, lat), {"note": ""}, ""),
    ]
    for geometry, extra, words in cases:
        assert_problem(_report(client, h, geometry, **extra), 422, words)
    assert _count(env) == before
    assert_problem(_report(client, h, _point(lon, lat), ref="x" * 101), 422)
