"""Zoomed-out flag tiles after a change: the engine's flag points (redline.tiles.FlagPoints) are
patched with the changed flags when only flags changed (workflow moves, a lead's new flag), and
loaded whole after a new scan or layer version; either way the tiles are those of a full load.
Both stores, through redline.tiles.render and through the HTTP tile endpoint after a real
workflow move."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
import shapely
from fastapi.testclient import TestClient

from api import tiles as api_tiles
from api.app import create_app
from redline import tiles, workflow
from redline.auth import create_token
from redline.config import Settings
from redline.layers import LoadReport, Zone
from redline.store import FlagFilter, open_store

from .conftest import BACKENDS, backend_url
from .rows import flag_row

TMS = morecantile.tms.get("WebMercatorQuad")
SEVERITIES = ("low", "medium", "high", "critical")
FLAG = flag_row(area_ha=1.5, area_mu=22.5, admin_name="某乡")
FILTERS = [
    None,
    FlagFilter(severity=["critical", "high"]),
    FlagFilter(status=["dispatched"]),
    FlagFilter(admin_code=["2"]),  # a jurisdiction
    FlagFilter(since="2026-05-01", until="2026-08-31"),
]


@pytest.fixture(params=BACKENDS)
def dense(request, tmp_path):
    """400 flags inside one zoom-9 tile (so inside one tile of every point zoom), many sharing
    a thinning cell, and the points cache emptied around the test."""
    url = backend_url(request, request.param, tmp_path)
    t9 = TMS.tile(109.3, 40.3, 9)
    b = TMS.bounds(t9)
    rng = np.random.default_rng(7)
    store = open_store(url)
    ids = []
    with store.transaction():
        for i in range(400):
            x = rng.uniform(b.left + 0.01, b.right - 0.01)
            y = rng.uniform(b.bottom + 0.01, b.top - 0.01)
            day = f"2026-0{1 + i % 9}-{1 + i % 28:02d}"
            row = dict(FLAG, severity=SEVERITIES[i % 4], admin_code=str(i % 3), first_seen=day, last_seen=day)
            ids.append(store.insert_flag(row, shapely.box(x, y, x + 0.002, y + 0.002)))
    _forget()
    yield {"store": store, "url": url, "ids": ids, "t9": t9}
    _forget()
    store.close()


def _forget() -> None:
    """Empty the process's tile caches (the API's gzipped tiles are kept by ETag, which names
    the data version but not the store: the other backend's store has the same versions)."""
    tiles.FLAG_POINTS.clear()
    tiles.TILES.clear()
    api_tiles.GZIPPED.clear()


def _refs(t9) -> list[tiles.TileRef]:
    b = TMS.bounds(t9)
    centre = ((b.left + b.right) / 2, (b.bottom + b.top) / 2)
    return [tiles.TileRef(z, *(lambda t: (t.x, t.y))(TMS.tile(*centre, z))) for z in range(3, tiles.FLAG_POINT_ZOOM)]


def _render_all(store, refs) -> dict:
    version = tiles.data_version(store, "flags")
    return {
        (ref.z, i): tiles.render(store, "flags", ref, flt, version=version)
        for ref in refs
        for i, flt in enumerate(FILTERS)
    }


def _full_load(store, refs) -> dict:
    """The same tiles from every flag loaded again (nothing kept)."""
    _forget()
    before = dict(tiles.FLAG_POINTS.loads)
    out = _render_all(store, refs)
    assert tiles.FLAG_POINTS.loads["full"] == before["full"] + 1
    return out


def _points(p: tiles.FlagPoints) -> dict:
    """FlagPoints as plain values (codes decoded), in their priority order."""
    out = {
        "id": p.id.tolist(),
        "mx": p.mx.tolist(),
        "my": p.my.tolist(),
        "area": np.nan_to_num(p.area, nan=-1).tolist(),
    }
    for k, codes in p.codes.items():
        vocab = [*p.vocab[k], None]
        out[k] = [vocab[c] for c in codes.tolist()]
    out["last_day"], out["first_day"] = p.last_day.tolist(), p.first_day.tolist()
    return out


def _feature(body: bytes, fid: int) -> dict | None:
    feats = mapbox_vector_tile.decode(body)["flags"]["features"] if body else []
    return next((f["properties"] for f in feats if f["id"] == fid), None)


def test_workflow_moves_patch_the_points_as_a_full_load_would(dense):
    store, ids, refs = dense["store"], dense["ids"], _refs(dense["t9"])
    start = dict(tiles.FLAG_POINTS.loads)
    _render_all(store, refs)
    loads = dict(tiles.FLAG_POINTS.loads)
    assert loads == {"full": start["full"] + 1, "patched": start["patched"]}

    # workflow moves (status, audited by the move), a flag seen again later and made more
    # severe (what a lead or a recheck writes: reordering the points), a lead's new flag
    moved = ids[::37]
    for fid in moved:
        workflow.move(store, fid, "dispatched", "test")
    store.update_flag(ids[5], {"severity": "critical", "last_seen": "2026-11-30", "admin_code": "9"})
    store.audit(ids[5], "test", "observed", {})
    b = TMS.bounds(dense["t9"])
    x, y = (b.left + b.right) / 2, (b.bottom + b.top) / 2
    new = store.insert_flag(dict(FLAG, zone_name="新区", severity="critical"), shapely.box(x, y, x + 0.002, y + 0.002))
    store.audit(new, "test", "created", {})

    patched = _render_all(store, refs)
    assert tiles.FLAG_POINTS.loads == {"full": loads["full"], "patched": loads["patched"] + 1}
    points = tiles.FLAG_POINTS.get(store, tiles.data_version(store, "flags"))
    assert _points(points) == _points(tiles.FlagPoints.load(store))
    assert patched == _full_load(store, refs)
    # and the change shows: the moved flags are the only ones a status filter keeps
    assert any(patched[(9, 2)]), "a moved flag in the zoom-9 tile"
    kept = {f["id"] for f in mapbox_vector_tile.decode(patched[(9, 2)])["flags"]["features"]}
    assert kept <= set(moved)
    assert _feature(patched[(9, 0)], new) == _feature(_full_load(store, refs)[(9, 0)], new)


def test_a_layer_version_or_a_scan_loads_every_flag(dense):
    store, ids, refs = dense["store"], dense["ids"], _refs(dense["t9"])
    _render_all(store, refs)
    zone = Zone("redline", "RL-1", "redline", shapely.box(109, 40, 109.1, 40.1), "C1", {}, area_ha=1.0)
    store.add_layer_version(LoadReport("redline", "t", "EPSG:4326", "-", 1, [zone]))
    workflow.move(store, ids[0], "dispatched", "test")
    full = tiles.FLAG_POINTS.loads["full"]
    after = _render_all(store, refs)
    assert tiles.FLAG_POINTS.loads["full"] == full + 1
    assert after == _full_load(store, refs)

    # a workflow move then patches again
    workflow.move(store, ids[1], "dispatched", "test")
    patched = tiles.FLAG_POINTS.loads["patched"]
    assert _render_all(store, refs) == _full_load(store, refs)
    assert tiles.FLAG_POINTS.loads["patched"] == patched + 1


def test_the_http_tile_after_a_workflow_move_via_the_api(dense, tmp_path):
    store, ids, t9 = dense["store"], dense["ids"], dense["t9"]
    token = create_token(store, "root", "admin")
    h = {"Authorization": f"Bearer {token}"}
    settings = Settings(database_url=dense["url"], data_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    ref = _refs(t9)[-1]  # zoom 9: points, thinned by the engine
    url = f"/collections/flags/tiles/WebMercatorQuad/{ref.z}/{ref.y}/{ref.x}"
    with TestClient(create_app(settings)) as client:
        assert client.get(url, headers=h).status_code == 200
        loads = dict(tiles.FLAG_POINTS.loads)
        for fid in ids[:60:3]:
            r = client.patch(f"/flags/{fid}", json={"status": "dispatched"}, headers=h)
            assert r.status_code == 200, r.text
        after = client.get(url, headers=h)
        assert after.status_code == 200
        assert tiles.FLAG_POINTS.loads == {"full": loads["full"], "patched": loads["patched"] + 1}
        _forget()
        full = client.get(url, headers=h)
        assert tiles.FLAG_POINTS.loads["full"] == loads["full"] + 1
    assert after.content == full.content
    statuses = {f["properties"]["status"] for f in mapbox_vector_tile.decode(after.content)["flags"]["features"]}
    assert "dispatched" in statuses


def test_a_starting_server_loads_the_points_before_anyone_asks(dense, tmp_path):
    # the first zoomed-out flag tile after a start finds the points loaded (no full load of its own)
    _forget()
    full = tiles.FLAG_POINTS.loads["full"]
    token = create_token(dense["store"], "root", "admin")
    settings = Settings(database_url=dense["url"], data_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    with TestClient(create_app(settings)):
        pass  # started and stopped: the warm-up is over when the server has stopped
    assert tiles.FLAG_POINTS.loads["full"] == full + 1
    ref = _refs(dense["t9"])[0]
    with TestClient(create_app(settings)) as client:
        r = client.get(
            f"/collections/flags/tiles/WebMercatorQuad/{ref.z}/{ref.y}/{ref.x}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code in (200, 204)
    assert tiles.FLAG_POINTS.loads["full"] == full + 1  # neither the second start nor the tile reloaded
