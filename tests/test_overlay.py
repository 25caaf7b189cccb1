"""Patches × zones: the strictest zone wins (not the largest overlap), overlaps are geodesic,
permits cover or not, admin units. Expected values are computed here by hand and with pyproj."""

from __future__ import annotations

from datetime import date

import pytest
import shapely

from redline.change import resolve_product
from redline.layers import Zone
from redline.overlay import Assessment, Conflict, Overlay, permit_valid
from redline.patches import Patch
from redline.rules import load_rules
from redline.scan import scan_product

from .conftest import blank, pixel_box
from .georef import geodesic_ha

# a patch 0.004 deg wide: 0.003 deg (3/4) in the red line, 0.001 deg (1/4) in the reserve core
PATCH = shapely.box(108.000, 39.900, 108.004, 39.901)
RED_LINE = shapely.box(107.990, 39.890, 108.003, 39.910)
CORE = shapely.box(108.003, 39.890, 108.020, 39.910)
DAY = date(2026, 6, 1)


def zone(kind, geom, regime, name="z", **kw) -> Zone:
    return Zone(kind, name, regime, geom, id=kw.pop("id", None), **kw)


def patch(geom=PATCH, activity="mining") -> Patch:
    return Patch(geom, activity, "high", None, 40, geodesic_ha(geom))


def assess(zones, patches=None, on=DAY):
    return Overlay(zones, load_rules(), on).assess(patches or [patch()])


@pytest.mark.parametrize("red_share", [0.75, 0.25])
def test_strictest_zone_wins_not_the_largest_overlap(red_share):
    """Mining 30/10 between red line (high) and core (critical) is critical/core, and so is 10/30."""
    cut = 108.0 + 0.004 * red_share
    red, core = shapely.box(107.99, 39.89, cut, 39.91), shapely.box(cut, 39.89, 108.02, 39.91)
    (a,) = assess([zone("redline", red, "redline", "RL", id=1), zone("reserve", core, "core", "R", id=2)])
    by_layer = {c.zone.kind: c for c in a.conflicts}
    assert (by_layer["redline"].severity, by_layer["reserve"].severity) == ("high", "critical")
    assert (a.strictest.zone.kind, a.strictest.zone.regime, a.strictest.severity) == ("reserve", "core", "critical")
    # overlaps: the parts of the patch in each zone, measured with pyproj
    assert by_layer["redline"].overlap_ha == pytest.approx(geodesic_ha(PATCH & red), rel=1e-6)
    assert by_layer["reserve"].overlap_ha == pytest.approx(geodesic_ha(PATCH & core), rel=1e-6)
    assert by_layer["redline"].overlap_ha / a.patch.area_ha == pytest.approx(red_share, rel=1e-3)


def test_strictest_among_equal_severities_is_the_larger_overlap():
    a_zone, b_zone = shapely.box(107.99, 39.89, 108.003, 39.91), shapely.box(108.003, 39.89, 108.02, 39.91)
    (a,) = assess(
        [zone("redline", b_zone, "redline", "RL-small", id=1), zone("redline", a_zone, "redline", "RL-large", id=2)]
    )
    assert [c.severity for c in a.conflicts] == ["high", "high"]
    assert a.strictest.zone.name == "RL-large"


def test_strictest_ranks_by_severity_before_overlap():
    z = zone("redline", RED_LINE, "redline")
    a = Assessment(
        patch(),
        [
            Conflict(z, 3.0, "high", "r1"),
            Conflict(z, 1.0, "critical", "r2"),
            Conflict(z, 5.0, "low", "r3"),
            Conflict(z, 4.0, "medium", "r4"),
        ],
    )
    assert a.strictest.rule == "r2"


def test_conflict_record_in_hectares_and_mu():
    z = zone("reserve", CORE, "core", "R", id=7, attrs={"layer_version": 3})
    rec = Conflict(z, 1.23456789, "critical", "core").record()
    assert rec == {
        "zone_id": 7,
        "layer": "reserve",
        "layer_version": 3,
        "zone_name": "R",
        "regime": "core",
        "overlap_ha": 1.2346,
        "overlap_mu": round(1.23456789 * 15, 3),
        "severity": "critical",
        "rule": "core",
    }


def test_patch_wholly_inside_a_zone_overlaps_by_its_area():
    (a,) = assess([zone("reserve", shapely.box(107.9, 39.8, 108.1, 40.0), "buffer")])
    (c,) = a.conflicts
    assert c.overlap_ha == a.patch.area_ha == pytest.approx(geodesic_ha(PATCH), rel=1e-12)
    assert (c.severity, c.rule is not None) == ("high", True)


def test_touching_a_zone_boundary_or_no_zone_is_no_conflict():
    beside = shapely.box(108.004, 39.89, 108.02, 39.91)  # shares the patch's east edge
    assert assess([zone("redline", beside, "redline")]) == []
    assert assess([]) == []
    assert Overlay([zone("redline", beside, "redline")], load_rules(), DAY).assess([]) == []
    # admin units and permits alone are no conflicts
    assert (
        assess(
            [
                zone("admin", shapely.box(107, 39, 109, 41), "admin", code="1"),
                zone("permit", shapely.box(107, 39, 109, 41), "permit"),
            ]
        )
        == []
    )


def test_unmatched_activity_is_graded_low():
    rules_text = (
        'version = "t"\n[[rule]]\nlayer = "reserve"\nregimes = ["core"]\nactivities = ["road"]\nseverity = "critical"\n'
    )
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rules.toml"
        path.write_text(rules_text)
        rules = load_rules(path)
    (a,) = Overlay([zone("reserve", CORE, "core")], rules, DAY).assess([patch()])
    assert (a.conflicts[0].severity, a.conflicts[0].rule) == ("low", None)


def test_patches_come_back_in_input_order_with_their_admin_unit():
    west = patch(shapely.box(107.995, 39.900, 107.996, 39.901))
    east = patch(shapely.box(108.010, 39.900, 108.011, 39.901), activity="transport")
    outside = patch(shapely.box(109.0, 39.9, 109.001, 39.901))
    zones = [
        zone("redline", RED_LINE, "redline", "RL"),
        zone("reserve", CORE, "core", "R"),
        zone("admin", shapely.box(107.9, 39.8, 108.005, 40.0), "admin", "West", code="W"),
        zone("admin", shapely.box(108.005, 39.8, 108.1, 40.0), "admin", "East", code="E"),
    ]
    out = assess(zones, [east, outside, west])
    assert [(a.patch.activity, a.admin.code, a.strictest.zone.name) for a in out] == [
        ("transport", "E", "R"),
        ("mining", "W", "RL"),
    ]


# --- permits ---------------------------------------------------------------------------


def permit(share: float, activity=None, valid_from=None, valid_to=None):
    """A permit over the western ``share`` of the patch."""
    geom = shapely.box(107.99, 39.89, 108.0 + 0.004 * share, 39.91)
    return zone(
        "permit",
        geom,
        "permit",
        f"P{share}",
        activity=activity,
        valid_from=valid_from,
        valid_to=valid_to,
        id=int(share * 100),
    )


@pytest.mark.parametrize("share,covered", [(0.95, True), (0.91, True), (0.89, False), (0.5, False)])
def test_permit_must_cover_nine_tenths_of_the_patch(share, covered):
    (a,) = assess([zone("reserve", CORE | RED_LINE, "buffer"), permit(share)])
    assert (a.permit is not None) == covered
    if covered:
        assert a.permit.name == f"P{share}"


def test_two_permits_together_cover_and_the_larger_one_is_named():
    west = zone("permit", shapely.box(107.99, 39.89, 108.001, 39.91), "permit", "W", id=1)
    east = zone("permit", shapely.box(108.001, 39.89, 108.02, 39.91), "permit", "E", id=2)
    (a,) = assess([zone("reserve", CORE | RED_LINE, "buffer"), west, east])
    assert a.permit is not None and a.permit.name == "E"


@pytest.mark.parametrize("activity,covered", [(None, True), ("mining", True), ("energy", False)])
def test_permit_for_another_activity_does_not_cover(activity, covered):
    (a,) = assess([zone("reserve", CORE | RED_LINE, "buffer"), permit(1.0, activity=activity)])
    assert (a.permit is not None) == covered


@pytest.mark.parametrize(
    "valid_from,valid_to,covered",
    [
        (None, None, True),
        (date(2026, 1, 1), date(2026, 12, 31), True),
        (date(2026, 6, 1), date(2026, 6, 1), True),
        (date(2026, 6, 2), None, False),
        (None, date(2026, 5, 31), False),
    ],
)
def test_permit_valid_on_the_acquisition_day_only(valid_from, valid_to, covered):
    p = permit(1.0, valid_from=valid_from, valid_to=valid_to)
    assert permit_valid(p, DAY) == covered
    (a,) = assess([zone("reserve", CORE | RED_LINE, "buffer"), p])
    assert (a.permit is not None) == covered


# --- through a scan: the flag carries the strictest zone ---------------------------------


def test_scan_flag_30_in_red_line_10_in_core_is_critical_core(store, load_zones, write_raster, class_table):
    load_zones("redline", [(pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"})])
    load_zones("reserve", [(pixel_box(350, 0, 500, 300), {"zone": "核心区", "name": "R"})])
    arr = blank()
    arr[100:140, 320:360] = 1  # mining, 30 columns in the red line, 10 in the core zone
    res = scan_product(store, resolve_product(write_raster(arr), class_table=class_table, acquired_after="2026-06-01"))
    (flag,) = store.flags()
    assert res.conflicts == 1
    assert (flag["severity"], flag["zone_layer"], flag["zone_regime"], flag["zone_name"]) == (
        "critical",
        "reserve",
        "core",
        "R",
    )
    conflicts = {c["layer"]: c for c in store.conflicts(flag["id"])}
    assert (conflicts["redline"]["severity"], conflicts["reserve"]["severity"]) == ("high", "critical")
    assert conflicts["redline"]["overlap_ha"] == pytest.approx(3 * conflicts["reserve"]["overlap_ha"], rel=1e-3)


def test_conflict_record_of_a_zone_without_layer_version():
    rec = Conflict(zone("redline", RED_LINE, "redline", "RL", id=1), 0.5, "high", "r").record()
    assert rec["layer_version"] == 0 and rec["overlap_mu"] == 7.5


def test_a_patch_wholly_inside_costs_no_intersection():
    """Inside a zone, the overlap is the patch's own (already measured) area, taken as it is."""
    p = Patch(PATCH, "mining", "high", None, 40, 123.0)  # a sentinel area: no intersection recomputes it
    (a,) = assess([zone("reserve", shapely.box(107.9, 39.8, 108.1, 40.0), "buffer")], [p])
    assert a.conflicts[0].overlap_ha == 123.0
    (b,) = assess([zone("reserve", CORE, "core")], [p])  # partly inside: measured
    assert b.conflicts[0].overlap_ha == pytest.approx(geodesic_ha(PATCH & CORE), rel=1e-6)


def test_a_patch_touching_one_zone_does_not_hide_the_next_pairs():
    beside = zone("redline", shapely.box(108.004, 39.89, 108.02, 39.91), "redline", "beside")
    far = zone("reserve", shapely.box(108.1, 39.8, 108.2, 40.0), "core", "far")
    inside = patch(shapely.box(108.15, 39.9, 108.151, 39.901))
    out = assess([beside, far], [patch(), inside])  # the first patch only touches 'beside'
    assert [(a.patch.geometry.bounds[0], a.strictest.zone.name) for a in out] == [(108.15, "far")]


def test_admin_unit_is_the_one_containing_the_patch_not_its_bounding_box():
    # an L-shaped township whose bounding box covers the patch, and the township that contains it
    ell = shapely.Polygon(
        [(107.9, 39.8), (108.1, 39.8), (108.1, 39.85), (107.95, 39.85), (107.95, 40.0), (107.9, 40.0)]
    )
    (a,) = assess(
        [
            zone("redline", RED_LINE, "redline"),
            zone("admin", ell, "admin", "L", code="L"),
            zone("admin", shapely.box(107.96, 39.86, 108.05, 39.95), "admin", "In", code="IN"),
        ]
    )
    assert a.admin.code == "IN"
    (b,) = assess([zone("redline", RED_LINE, "redline"), zone("admin", ell, "admin", "L", code="L")])
    assert b.admin is None
