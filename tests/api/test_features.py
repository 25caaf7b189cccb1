"""OGC API – Features: paging, filters, and GDAL's own OAPIF client against a live server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from redline.safeio import HARDENED_CONFIG

from .conftest import assert_problem


def test_landing_conformance_collections(client, auth):
    assert {link["rel"] for link in client.get("/").json()["links"]} >= {"self", "conformance", "data", "service-desc"}
    assert any(c.endswith("/geojson") for c in client.get("/conformance").json()["conformsTo"])
    ids = [c["id"] for c in client.get("/collections", headers=auth("viewer")).json()["collections"]]
    assert ids == ["flags", "redline", "reserve", "permit", "admin", "control"]
    assert_problem(client.get("/collections/roads", headers=auth("viewer")), 404, "roads")


def test_keyset_paging_with_next_links(client, auth):
    h = auth("viewer")
    url, seen, pages = "/collections/flags/items?limit=3&severity=high&severity=critical", [], 0
    while url:
        r = client.get(url, headers=h)
        assert r.headers["content-type"].startswith("application/geo+json")
        page = r.json()
        assert page["numberMatched"] == 5 and page["numberReturned"] == len(page["features"]) <= 3
        seen += [f["id"] for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        url = nxt[0].split("testserver", 1)[1] if nxt else None
        pages += 1
    assert pages == 2 and len(seen) == len(set(seen)) == 5 and seen == sorted(seen)


def test_filters_bbox_datetime_and_item(client, auth, env):
    h = auth("viewer")
    everything = client.get("/collections/flags/items", headers=h).json()
    assert everything["numberMatched"] == 8
    road = next(p for p in env["truth"]["patches"] if p["name"] == "road_seam")["centroid_lonlat"]
    box = f"{road[0] - 0.02},{road[1] - 0.02},{road[0] + 0.02},{road[1] + 0.02}"
    near = client.get(f"/collections/flags/items?bbox={box}", headers=h).json()
    assert "transport" in {f["properties"]["activity"] for f in near["features"]} and near["numberMatched"] < 8
    sept = client.get("/collections/flags/items?datetime=2026-09-01/..", headers=h).json()
    assert [f["properties"]["n_observations"] for f in sept["features"]] == [2]
    fid = sept["features"][0]["id"]
    one = client.get(f"/collections/flags/items/{fid}", headers=h).json()
    assert one["type"] == "Feature" and one["geometry"]["type"] == "MultiPolygon"
    assert_problem(client.get("/collections/flags/items?bbox=1,2,3", headers=h), 422, "bbox")
    assert_problem(client.get("/collections/flags/items?datetime=yesterday", headers=h), 422, "RFC 3339")
    assert_problem(client.get("/collections/flags/items/99999", headers=h), 404)
    rl = client.get("/collections/redline/items", headers=h).json()
    assert rl["numberMatched"] == 3 and {f["properties"]["function_type"] for f in rl["features"]}


@pytest.fixture(scope="module")
def live_server(env, tmp_path_factory):
    """`redline serve` in its own process (GDAL holds the GIL while it fetches)."""
    log = tmp_path_factory.mktemp("serve") / "access.log"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    redline = str(Path(sys.executable).with_name("redline"))
    proc = subprocess.Popen(
        [redline, "--db", env["url"], "serve", "--port", str(port)], stdout=open(log, "w"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"server did not start: {log.read_text()}")
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


OAPIF_CLIENT = """
import json, sys
import pyogrio
base, box = sys.argv[1], tuple(map(float, sys.argv[2].split(",")))
layers = [name for name, _ in pyogrio.list_layers(f"OAPIF:{base}")]
gdf = pyogrio.read_dataframe(f"OAPIF:{base}", layer="flags", PAGE_SIZE=3)  # an OAPIF open option
near = pyogrio.read_dataframe(f"OAPIF:{base}", layer="flags", bbox=box)
print(json.dumps({"layers": layers, "ids": gdf["id"].tolist(), "severity": sorted(set(gdf["severity"])),
                  "near": near["activity"].tolist()}))
"""


def test_gdal_oapif_client_reads_flags(live_server, env):
    """GDAL's OGC API Features driver, as an analyst runs it (its own process, GDAL's own
    network settings): count, paging (page size 3 < 8 flags) and a bbox filter."""
    live_server, log = live_server
    road = next(p for p in env["truth"]["patches"] if p["name"] == "road_seam")["centroid_lonlat"]
    box = (road[0] - 0.02, road[1] - 0.02, road[0] + 0.02, road[1] + 0.02)
    # the client's environment, not the server's hardened one (no GDAL network there)
    client_env = {k: v for k, v in os.environ.items() if k not in HARDENED_CONFIG}
    # the OAPIF driver sets its own headers, so the token goes through GDAL's bearer auth
    client_env.update(GDAL_HTTP_AUTH="BEARER", GDAL_HTTP_BEARER=env["tokens"]["viewer"])
    before = log.read_text().count("GET /collections/flags/items")
    run = subprocess.run(
        [sys.executable, "-c", OAPIF_CLIENT, live_server, ",".join(map(str, box))],
        env=client_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert {"flags", "redline", "reserve"} <= set(got["layers"])
    assert len(got["ids"]) == 8 and len(set(got["ids"])) == 8
    pages = log.read_text().count("GET /collections/flags/items") - before
    assert pages >= 3  # 8 flags, 3 a page: GDAL followed our next links
    assert got["severity"] == ["critical", "high", "medium"]
    assert 0 < len(got["near"]) < 8 and "transport" in got["near"]


OAPIF_WHERE = """
import json, sys
import pyogrio
base = sys.argv[1]
out = {}
for name, where in (("critical", "severity = 'critical'"), ("severe", "severity IN ('high', 'critical')"),
                    ("big", "area_ha > 2.5 AND activity <> 'mining'")):
    gdf = pyogrio.read_dataframe(f"OAPIF:{base}", layer="flags", where=where)
    out[name] = sorted(gdf["id"].tolist())
print(json.dumps(out))
"""


def test_gdal_pushes_where_to_the_server_as_cql2(live_server, env, client, auth):
    """GDAL's OAPIF driver, given ``-where``, sends what it can to the server (as the items
    operation's own query parameters) and evaluates the rest itself: the answers match the
    server's own filtering either way."""
    live_server, log = live_server
    client_env = {k: v for k, v in os.environ.items() if k not in HARDENED_CONFIG}
    client_env.update(GDAL_HTTP_AUTH="BEARER", GDAL_HTTP_BEARER=env["tokens"]["viewer"])
    run = subprocess.run(
        [sys.executable, "-c", OAPIF_WHERE, live_server], env=client_env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    h = auth("viewer")
    flags = client.get("/collections/flags/items?limit=1000", headers=h).json()["features"]
    expect = {
        "critical": [f["id"] for f in flags if f["properties"]["severity"] == "critical"],
        "severe": [f["id"] for f in flags if f["properties"]["severity"] in ("high", "critical")],
        "big": [f["id"] for f in flags if f["properties"]["area_ha"] > 2.5 and f["properties"]["activity"] != "mining"],
    }
    assert got == {k: sorted(v) for k, v in expect.items()}
    requests = [line for line in log.read_text().splitlines() if "GET /collections/flags/items" in line]
    # GDAL reads the items operation's parameters from our OpenAPI document and sends a simple
    # equality as that parameter: the server filters, GDAL does not fetch every flag
    assert any("severity=critical" in line for line in requests), requests
