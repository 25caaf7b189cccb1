"""What only the PostGIS store has: subdivided zones, GiST-indexed predicates in the
database, the writers' advisory lock, the UNIQUE scan ledger."""

from __future__ import annotations

import psycopg
import pytest
import shapely

from redline.layers import LoadReport, Zone
from redline.store import FlagFilter, open_store
from redline.store.postgis import PART_VERTICES, WRITE_LOCK

from .test_store import FLAG

pytestmark = pytest.mark.postgis


@pytest.fixture
def url(postgis):
    url = postgis.database()
    yield url
    postgis.drop(url)


@pytest.fixture
def pg(url):
    s = open_store(url)
    yield s
    s.close()


def _load(store, zones):
    return store.add_layer_version(LoadReport("redline", "test", "EPSG:4326", "-", len(zones), zones))


def test_big_zones_are_subdivided_and_found_by_their_pieces(pg):
    circle = shapely.Point(108.7, 39.85).buffer(0.1, quad_segs=1000)  # 4,000 vertices
    _load(pg, [Zone("redline", "RL-big", "redline", circle, "RL-big", {"function_type": "水源涵养"})])
    n, most, area = (
        pg.conn.execute(
            "SELECT COUNT(*) AS n, MAX(ST_NPoints(geom)) AS most, SUM(ST_Area(geom)) AS area FROM zone_parts"
        )
        .fetchone()
        .values()
    )
    assert n > 10 and most <= PART_VERTICES + 1 and area == pytest.approx(circle.area, rel=1e-9)
    (zone,) = pg.zones(("redline",))
    assert shapely.to_wkb(zone.geometry) == shapely.to_wkb(circle)  # stored whole, exactly
    corner = (108.6, 39.75, 108.62, 39.77)  # inside the circle's bbox, outside the circle
    assert pg.zones(("redline",), bbox=corner) == []
    assert [z.name for z in pg.zones(("redline",), bbox=(108.79, 39.84, 108.81, 39.86))] == ["RL-big"]  # the edge
    assert [z.name for z in pg.zones(("redline",), bbox=(108.7, 39.85, 108.7, 39.85))] == ["RL-big"]  # a point
    _load(pg, [Zone("redline", "RL-v2", "redline", shapely.box(108.6, 39.8, 108.61, 39.81))])
    assert [z.name for z in pg.zones(("redline",), bbox=(108.5, 39.7, 108.9, 39.9))] == ["RL-v2"]  # current only


def test_bbox_filters_run_on_the_gist_index(pg):
    rows = [(108 + (i % 60) / 10, 38 + (i // 60) / 10) for i in range(3000)]
    with pg.transaction():
        for x, y in rows:
            pg.insert_flag(FLAG, shapely.box(x, y, x + 0.01, y + 0.01))
    pg.conn.execute("ANALYZE flags")
    plan = "\n".join(
        r["QUERY PLAN"]
        for r in pg.conn.execute(
            "EXPLAIN SELECT * FROM flags WHERE geom && ST_MakeEnvelope(108.2, 39.0, 108.4, 39.2, 4326)"
        )
    )
    assert "flags_geom" in plan, plan
    assert pg.count_flags(FlagFilter(bbox=(108.2, 39.0, 108.4, 39.2))) == sum(
        1 for x, y in rows if x <= 108.4 and x + 0.01 >= 108.2 and y <= 39.2 and y + 0.01 >= 39.0
    )


def test_writers_take_the_lock_and_readers_never_wait(pg, url):
    other = open_store(url)
    try:
        with pg.transaction():
            pg.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
            with pg.transaction():  # nested: the same transaction, the same lock
                pg.insert_flag(FLAG, shapely.box(109, 39, 109.01, 39.01))
            assert (
                other.conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (WRITE_LOCK,)).fetchone()["ok"]
                is False
            )
            assert other.count_flags() == 0 and other.flags() == []  # not blocked; nothing half-written
        assert other.count_flags() == 2
        with other.transaction():  # released at commit
            other.update_flag(1, {"status": "dispatched"})
    finally:
        other.close()
    assert pg.flag(1)["status"] == "dispatched"


def test_scan_ledger_is_unique_on_the_checksum(pg):
    scan = {
        "checksum": "c1",
        "product_id": "P",
        "mode": "class",
        "sensor": None,
        "acquired_before": None,
        "acquired_after": "2026-06-01",
        "files": [],
        "started_at": "2026-06-02T00:00:00+00:00",
        "finished_at": "2026-06-02T00:01:00+00:00",
        "state": "done",
        "stats": {},
        "layer_versions": {},
        "rules_version": "t",
        "observed_fraction": 1.0,
    }
    pg.insert_scan(scan, shapely.box(108, 39, 109, 40))
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.insert_scan(scan, None)
    assert len(pg.scans()) == 1 and pg.scan_by_checksum("c1")["acquired_after"] == "2026-06-01"


def test_connections_are_reused_and_a_forked_child_cannot_break_them(url):
    import os

    first = open_store(url)
    conn = first.conn
    first.close()
    second = open_store(url)  # the idle connection, not a new backend
    assert second.conn is conn
    pid = os.fork()
    if pid == 0:  # the child closes what it inherited: that must not end the parent's session
        try:
            second.conn.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    try:
        assert second.count_flags() == 0
    finally:
        second.close()
