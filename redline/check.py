"""A check: what does a region touch, what was flagged there, and what did we see."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np
import shapely

from . import vocab
from .auth import Principal
from .geo import area_ha
from .rules import PROTECTION_LAYERS
from .store import FlagFilter, Store

# Flags in these states are not (or no longer) conflicts an inspector must act on.
NOT_CONFLICT = ("permitted", "false_positive")


def _ha(x: float) -> dict:
    return {"ha": round(x, 4), "mu": round(vocab.hectares_to_mu(x), 2)}


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
) -> dict:
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
        {
            "product_id": s["product_id"],
            "sensor": s["sensor"],
            "acquired_after": s["acquired_after"],
            "observed_fraction": round(min(area_ha(shapely.intersection(region, s["footprint"])) / region_ha, 1.0), 4)
            if region_ha > 0
            else 0.0,
        }
        for s in scans
    ]

    zones = []
    for z in store.zones(PROTECTION_LAYERS, region=region):
        part = region if shapely.contains_properly(z.geometry, region) else shapely.intersection(region, z.geometry)
        overlap = area_ha(part)
        if overlap <= 1e-6:
            continue
        zones.append(
            {
                "layer": z.kind,
                "layer_version": z.attrs.get("layer_version"),
                "name": z.name,
                "regime": z.regime,
                "code": z.code,
                "overlap": _ha(overlap),
                **coverage(part, overlap),
            }
        )
    zones.sort(key=lambda z: (z["layer"], -z["overlap"]["ha"]))

    flags = store.flags(principal.scope(FlagFilter(region=region, since=since, until=until)))
    conflicts = [f for f in flags if f["status"] not in NOT_CONFLICT]

    summary = {
        "region": _ha(region_ha),
        "zones_touched": len(zones),
        "flags": len(flags),
        "conflicts": len(conflicts),
        "conflict_area": _ha(min(_ground_inside(conflicts, region), region_ha)),
        "by_severity": dict(Counter(f["severity"] for f in conflicts)),
        "by_activity": dict(Counter(f["activity"] for f in conflicts)),
        "by_status": dict(Counter(f["status"] for f in flags)),
        "scans": len(scans),
        **coverage(region, region_ha),
    }
    return {
        "period": {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
        "summary": summary,
        "zones": zones,
        "scans": per_scan,
        "flags": [{k: v for k, v in f.items() if k != "geometry"} for f in flags],
        "layer_versions": {lv["kind"]: lv["version"] for lv in store.layer_versions()},
    }
