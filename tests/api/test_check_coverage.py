"""POST /checks: ``not_observed``, the part of the region no scan footprint saw (both stores)."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import mapping, shape

from redline.check import NOT_OBSERVED_VERTICES, not_observed
from redline.geo import area_ha
from redline.store import open_store

from .test_checks import GEOM

PART = shapely.box(108.70, 39.85, 108.90, 39.95)  # its east end lies beyond every scan footprint


def _seen(env):
    store = open_store(env["url"])
    try:
        return shapely.union_all([s["footprint"] for s in store.scans()])
    finally:
        store.close()


def test_not_observed_is_the_region_outside_the_footprints(client, auth, env):
    full = client.post("/checks", json=GEOM, headers=auth("viewer")).json()
    assert full["summary"]["observed_fraction"] == 1.0 and full["not_observed"] is None

    a = client.post("/checks", json=mapping(PART), headers=auth("viewer")).json()
    assert 0 < a["summary"]["observed_fraction"] < 1
    hole = shape(a["not_observed"])
    assert a["not_observed"]["type"] in ("Polygon", "MultiPolygon") and hole.is_valid
    expected = PART.difference(_seen(env))
    assert hole.symmetric_difference(expected).area < 1e-6 * PART.area
    assert area_ha(hole) / a["summary"]["region"]["ha"] == pytest.approx(
        1 - a["summary"]["observed_fraction"], abs=1e-3
    )


def test_not_observed_without_scans_is_the_region_simplified(client, auth):
    a = client.post("/checks?datetime=2020-01-01/2020-12-31", json=mapping(PART), headers=auth("viewer")).json()
    assert a["summary"]["scans"] == 0
    assert shape(a["not_observed"]).symmetric_difference(PART).area < 1e-9
    # a drawn region of 20,000 vertices: the map gets a few thousand at most, the same ground
    circle = shapely.Point(108.5, 39.5).buffer(0.05, quad_segs=5000)
    assert shapely.get_num_coordinates(circle) > 20_000
    b = client.post("/checks?datetime=2020-01-01/2020-12-31", json=mapping(circle), headers=auth("viewer")).json()
    simple = shape(b["not_observed"])
    assert 4 < shapely.get_num_coordinates(simple) <= NOT_OBSERVED_VERTICES
    assert area_ha(simple) == pytest.approx(b["summary"]["region"]["ha"], rel=1e-3)


def test_not_observed_specks_keep_the_largest_within_the_budget():
    """1,600 small unobserved specks (cloud gaps) are more vertices than the map gets: the
    largest are kept, never an invented outline; a region imagery saw whole has none."""
    region = shapely.box(108, 39, 108.5, 39.5)
    specks = [
        shapely.box(x, y, x + 0.001 * (1 + (i * j) % 3), y + 0.001)
        for i in range(40)
        for j in range(40)
        for x, y in [(108 + i * 0.01, 39 + j * 0.01)]
    ]
    unseen = shapely.union_all(specks)
    got = not_observed(region, region.difference(unseen), area_ha(region))
    kept = shapely.get_parts(got)
    assert shapely.get_num_coordinates(got) <= NOT_OBSERVED_VERTICES and 100 < len(kept) < len(specks)
    assert unseen.buffer(1e-9).contains(got)
    smallest_kept = min(p.area for p in kept)
    dropped = [s for s in specks if not got.intersects(s.centroid)]
    assert dropped and max(s.area for s in dropped) <= smallest_kept + 1e-12
    assert not_observed(region, region.buffer(0.01), area_ha(region)) is None
