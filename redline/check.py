"""A check: what does a region touch, what was flagged there, and what did we see."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import shapely

from .auth import Principal
from .geo import area_ha
from .model import Area, CheckAnswer, CheckScan, CheckSummary, CheckZone, Flag, Period, PolygonalGeometry
from .rules import PROTECTION_LAYERS
from .store import FlagFilter, Store

# Flags in these states are not (or no longer) conflicts an inspector must act on.
NOT_CONFLICT = ("permitted", "false_positive")
# The unobserved part of a region is simplified to at most this many vertices (a map layer,
# not a survey), and is none when it is less than this share of the region.
NOT_OBSERVED_VERTICES = 2000
NOT_OBSERVED_SHARE = 1e-4


def not_observed(region, seen, region_ha: float):
    """The part of the lon/lat ``region`` outside ``seen`` (the union of the scan footprints,
    or None), simplified to at most NOT_OBSERVED_VERTICES vertices; None when imagery saw all
    of it but a sliver (less than NOT_OBSERVED_SHARE of the region)."""
    rest = region if seen is None else shapely.difference(region, seen)
    rest = shapely.make_valid(rest) if not shapely.is_valid(rest) else rest
    rest = shapely.union_all([p for p in shapely.get_parts(rest) if p.geom_type in ("Polygon", "MultiPolygon")])
    if rest.is_empty or area_ha(rest) < NOT_OBSERVED_SHARE * max(region_ha, 1e-9):
        return None
    return simplified(rest)


def simplified(geom, vertices: int = NOT_OBSERVED_VERTICES):
    """``geom`` simplified to at most ``vertices`` vertices, for drawing on a map: coarser
    tolerances in turn; thousands of separate specks become the largest that fit."""
    minx, miny, maxx, maxy = geom.bounds
    size = max(maxx - minx, maxy - miny)
    tolerance, out = size * 1e-5, geom
    while shapely.get_num_coordinates(out) > vertices:
        if tolerance > size:
            parts = sorted(shapely.get_parts(geom), key=lambda g: -g.area)
            counts = np.cumsum(shapely.get_num_coordinates(parts))
            return shapely.union_all(parts[: max(1, int(np.searchsorted(counts, vertices, "right")))])
        simpler = shapely.simplify(geom, tolerance, preserve_topology=True)
        if not simpler.is_empty:
            out = simpler
        tolerance *= 2
    return out


def _geojson(geom) -> PolygonalGeometry | None:
    if geom is None:
        return None
    rounded = shapely.transform(geom, lambda xy: np.round(xy, 7))  # ~1 cm
    mapped = shapely.geometry.mapping(rounded)
    return PolygonalGeometry(type=mapped["type"], coordinates=mapped["coordinates"])


def _ground_inside(flags: list[dict], region) -> float:
    """Hectares of the flags' ground inside the (prepared) region, overlaps counted once.
    A flag wholly inside counts its stored (geodesic) area; only the ones the region's edge
    cuts are intersected and measured again; flags that overlap one another are unioned first
    (only those)."""
    if not flags:
        return 0.0
    geoms = np.array([f["geometry"] for f in flags], dtype=object)
    tree = shapely.STRtree(geoms)
    pairs = np.hstack([tree.query(geoms, predicate="overlaps"), tree.query(geoms, predicate="contains")])
    shared = np.zeros(len(geoms), dtype=bool)
    shared[pairs[:, pairs[0] != pairs[1]].ravel()] = True
    whole = shapely.contains_properly(region, geoms) & ~shared
    cut = shapely.intersection(geoms[~whole & ~shared], region)
    merged = shapely.intersection(shapely.union_all(geoms[shared]), region) if shared.any() else None
    parts = [*cut, *(shapely.get_parts(merged) if merged is not None else ())]
    return sum(f["area_ha"] for f, w in zip(flags, whole) if w) + sum(area_ha(g) for g in parts)


def check_region(
    store: Store, region, since: date | None = None, until: date | None = None, *, principal: Principal
) -> CheckAnswer:
    """Answer a check over a lon/lat ``region`` for the period [since, until], listing only
    the flags ``principal`` may see (an inspector: their jurisdiction)."""
    shapely.prepare(region)
    region_ha = area_ha(region)

    # the store answers the spatial predicates (SQL function over an R*Tree / PostGIS with
    # GiST indexes); what stays here is measuring: overlap and coverage areas, geodesic
    scans = [s for s in store.scans(since=since, until=until, region=region) if s["footprint"] is not None]
    seen = shapely.union_all([s["footprint"] for s in scans]) if scans else None

    def coverage(geom, geom_ha: float) -> dict:
        if seen is None or geom_ha <= 0:
            return {"observed_fraction": 0.0, "last_observed": None}
        frac = area_ha(shapely.intersection(geom, seen)) / geom_ha
        last = max((s["acquired_after"] for s in scans if shapely.intersects(geom, s["footprint"])), default=None)
        return {"observed_fraction": round(min(frac, 1.0), 4), "last_observed": last}

    # per scan, so "the June image saw 96 % (clouds)" is visible, not only the union
    per_scan = [
        CheckScan(
            product_id=s["product_id"],
            sensor=s["sensor"],
            acquired_after=s["acquired_after"],
            observed_fraction=round(min(area_ha(shapely.intersection(region, s["footprint"])) / region_ha, 1.0), 4)
            if region_ha > 0
            else 0.0,
        )
        for s in scans
    ]

    zones = []
    for z in store.zones(PROTECTION_LAYERS, region=region):
        part = region if shapely.contains_properly(z.geometry, region) else shapely.intersection(region, z.geometry)
        overlap = area_ha(part)
        if overlap <= 1e-6:
            continue
        zones.append(
            CheckZone(
                layer=z.kind,
                layer_version=z.attrs.get("layer_version"),
                name=z.name,
                regime=z.regime,
                code=z.code,
                overlap=Area.of(overlap),
                **coverage(part, overlap),
            )
        )
    zones.sort(key=lambda z: (z.layer, -z.overlap.ha))

    flags = store.flags(principal.scope(FlagFilter(region=region, since=since, until=until)))
    conflicts = [f for f in flags if f["status"] not in NOT_CONFLICT]

    summary = CheckSummary(
        region=Area.of(region_ha),
        zones_touched=len(zones),
        flags=len(flags),
        conflicts=len(conflicts),
        conflict_area=Area.of(min(_ground_inside(conflicts, region), region_ha)),
        by_severity=dict(Counter(f["severity"] for f in conflicts)),
        by_activity=dict(Counter(f["activity"] for f in conflicts)),
        by_status=dict(Counter(f["status"] for f in flags)),
        scans=len(scans),
        **coverage(region, region_ha),
    )
    for f in flags:  # measured above; the answer lists the flags' fields
        del f["geometry"]
    typed = [Flag.model_validate(f) for f in flags]
    return CheckAnswer(
        period=Period(since=since.isoformat() if since else None, until=until.isoformat() if until else None),
        summary=summary,
        zones=zones,
        scans=per_scan,
        flags=typed,
        layer_versions={lv["kind"]: lv["version"] for lv in store.layer_versions()},
        not_observed=_geojson(not_observed(region, seen, region_ha)),
        region=_geojson(simplified(region)),
    )
