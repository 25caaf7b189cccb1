"""Screening: would a proposed project footprint conflict with the red line, the reserves or
the "three lines, one list" (三线一单) zoning?

The answer (:class:`redline.model.ScreeningAnswer`) gives, for the activity proposed:

- per red line and reserve zone touched, the verdict of the rules (prohibited / needs approval /
  clear), the rule behind it, the overlap (ha, mu) and its geometry;
- per environmental control unit touched, the verdict of its access list: the entry for the
  activity (or for every activity) decides — 禁止 prohibited, 限制 needs approval with the
  entry's condition, 允许 clear — and is cited (unit code, list version, row);
- the distance to the nearest red line and to the nearest reserve zone (0 when touched), and a
  proximity table of what lies within 1, 5 and 10 km (in the manner of IBAT's proximity report).

Zones are found through the store (exactly for what the footprint touches, by bounding box for
what lies near); areas and distances are geodesic (:mod:`redline.geo`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import shapely
import shapely.geometry

from . import vocab
from .accesslist import decide
from .geo import area_ha, distance_m, polygonal
from .rules import PROTECTION_LAYERS, VERDICTS, Rules
from .store import Store

NEAREST_CANDIDATES = 8  # planar-nearest zones re-measured geodesically
RINGS_KM = (1.0, 5.0, 10.0)
SCREENED_LAYERS = PROTECTION_LAYERS + (vocab.CONTROL,)
MAX_PROXIMITY = 1_000  # rows of the proximity table (nearest first)
M_PER_DEG_LAT = 110_574.0  # the fewest metres in a degree of latitude (at the equator)
M_PER_DEG_LON = 111_320.0  # metres in a degree of longitude at the equator


def padded_bounds(geom, metres: float) -> tuple[float, float, float, float]:
    """A lon/lat box holding every point within ``metres`` of ``geom`` (a little more)."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    dlat = 1.01 * metres / M_PER_DEG_LAT
    lat = min(max(abs(miny - dlat), abs(maxy + dlat)), 89.0)
    dlon = min(1.01 * metres / (M_PER_DEG_LON * math.cos(math.radians(lat))), 180.0)
    return (max(minx - dlon, -180.0), max(miny - dlat, -90.0), min(maxx + dlon, 180.0), min(maxy + dlat, 90.0))


def _overlap(footprint, zone) -> tuple[float, Any]:
    inter = polygonal(shapely.intersection(footprint, zone.geometry))
    return (0.0, None) if inter is None else (area_ha(inter), inter)


def _zone_row(zone, overlap_ha: float, inter) -> dict[str, Any]:
    return {
        "layer": zone.kind,
        "layer_version": zone.attrs.get("layer_version"),
        "name": zone.name,
        "regime": zone.regime,
        "code": zone.code,
        "overlap_ha": round(overlap_ha, 4),
        "overlap_mu": round(vocab.hectares_to_mu(overlap_ha), 2),
        "overlap_geometry": shapely.geometry.mapping(inter),
    }


def _unit_verdict(entry: dict | None, access_version: int | None) -> dict[str, Any]:
    if entry is None:
        rule = (
            "no access list loaded"
            if access_version is None
            else f"access list v{access_version}: no entry for this unit and activity"
        )
        return {"severity": None, "verdict": "clear", "rule": rule, "condition": None, "entry": None}
    citation = {
        "unit_code": entry["unit_code"],
        "list_version": entry["list_version"],
        "row": entry["source_row"],
        "activity": entry["activity"],
        "activity_text": entry["activity_text"],
        "decision": entry["decision"],
        "condition": entry["condition"],
    }
    return {
        "severity": None,
        "verdict": vocab.ACCESS_VERDICT[entry["decision"]],
        "rule": f"access list v{entry['list_version']} row {entry['source_row']}: "
        f"{entry['decision']} {entry['activity_text'] or entry['activity']}",
        "condition": entry["condition"] if entry["decision"] != "prohibited" else None,
        "entry": citation,
    }


def screen(store: Store, footprint, activity: str, rules: Rules, rings_km: tuple[float, ...] = RINGS_KM) -> dict:
    """Screen a lon/lat ``footprint`` for ``activity`` (any synonym): see the module's docstring."""
    activity = vocab.activity(activity)
    footprint_ha = area_ha(footprint)
    zones: list[dict[str, Any]] = []
    units: list[dict[str, Any]] = []
    touched_ids: set[int | None] = set()
    for z in store.zones(SCREENED_LAYERS, region=footprint):  # exactly those the footprint intersects
        touched_ids.add(z.id)
        overlap, inter = _overlap(footprint, z)
        if overlap <= 1e-6:  # a shared edge or corner: near (distance 0), not inside
            continue
        row = _zone_row(z, overlap, inter)
        if z.kind == vocab.CONTROL:
            units.append(row)
        else:
            severity, rule = rules.grade(z.kind, z.regime, activity)
            row.update(severity=severity, verdict=rules.verdict(severity), rule=rule, condition=None, entry=None)
            zones.append(row)

    access = store.layer_versions(kind=vocab.ACCESS_LIST)
    access_version = access[0]["version"] if access else None
    by_unit: dict[str, list[dict]] = defaultdict(list)
    for e in store.access_entries([u["code"] for u in units]):
        by_unit[e["unit_code"]].append(e)
    for u in units:
        u.update(_unit_verdict(decide(by_unit.get(u["code"], []), activity), access_version))

    def order(z):
        return (VERDICTS.index(z["verdict"]), -z["overlap_ha"], z["name"])

    verdict = min((z["verdict"] for z in zones + units), key=VERDICTS.index, default="clear")
    rings, proximity = proximity_table(store, footprint, touched_ids, rings_km)
    return {
        "activity": activity,
        "area_ha": round(footprint_ha, 4),
        "area_mu": round(vocab.hectares_to_mu(footprint_ha), 2),
        "verdict": verdict,
        "zones": sorted(zones, key=order),
        "control_units": sorted(units, key=order),
        "nearest_redline": nearest(store, footprint, "redline"),
        "nearest_reserve": nearest(store, footprint, "reserve"),
        "rings_km": list(rings_km),
        "rings": rings,
        "proximity": proximity,
        "rules_version": rules.version,
        "access_list_version": access_version,
        "layer_versions": {lv["kind"]: lv["version"] for lv in store.layer_versions()},
    }


def proximity_table(
    store: Store, footprint, touched_ids: set, rings_km: tuple[float, ...] = RINGS_KM
) -> tuple[list[dict], list[dict]]:
    """Zones (red lines, reserve zones, control units) within the outermost ring, each with its
    geodesic distance and the innermost ring holding it; and per ring the count by layer."""
    outer_m = max(rings_km) * 1000.0
    rows: list[dict[str, Any]] = []
    for z in store.zones(SCREENED_LAYERS, bbox=padded_bounds(footprint, outer_m)):
        d = 0.0 if z.id in touched_ids else distance_m(footprint, z.geometry)
        if d > outer_m:
            continue
        ring = min(r for r in rings_km if d <= r * 1000.0)
        rows.append(
            {
                "layer": z.kind,
                "name": z.name,
                "regime": z.regime,
                "code": z.code,
                "distance_m": round(d, 1),
                "ring_km": ring,
            }
        )
    rows.sort(key=lambda r: (r["distance_m"], SCREENED_LAYERS.index(r["layer"]), r["name"]))
    rings = [
        {"km": r, "counts": {k: sum(1 for x in rows if x["layer"] == k and x["ring_km"] <= r) for k in SCREENED_LAYERS}}
        for r in rings_km
    ]
    return rings, rows[:MAX_PROXIMITY]


def nearest(store: Store, geom, kind: str) -> dict | None:
    """The nearest zone of layer ``kind`` and its geodesic distance in metres (searching outward)."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    for pad in (0.1, 0.5, 2.0, 10.0, None):
        box = None if pad is None else (minx - pad, miny - pad, maxx + pad, maxy + pad)
        zones = store.zones((kind,), bbox=box)
        if not zones:
            continue
        geoms = np.array([z.geometry for z in zones], dtype=object)
        planar = shapely.distance(geoms, geom)
        # a zone outside the box is at least `pad` degrees away, so only a nearer hit is final
        if pad is None or planar.min() <= pad:
            break
    else:
        return None
    # degrees are a shortlist only (a degree of longitude shrinks with latitude): re-measure geodesically
    shortlist = np.argsort(planar)[:NEAREST_CANDIDATES]
    dist, zone = min(
        ((0.0 if planar[i] == 0 else distance_m(geom, geoms[i]), zones[i]) for i in shortlist), key=lambda t: t[0]
    )
    return {"layer": kind, "name": zone.name, "regime": zone.regime, "code": zone.code, "distance_m": round(dist, 1)}
