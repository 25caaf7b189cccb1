"""Screening: would a proposed project footprint conflict with the red line?"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from . import vocab
from .geo import area_ha, distance_m
from .rules import PROTECTION_LAYERS, VERDICTS, Rules
from .store import Store

NEAREST_CANDIDATES = 8  # planar-nearest zones re-measured geodesically


def screen(store: Store, footprint, activity: str, rules: Rules) -> dict:
    """Verdict per zone touched, overall verdict, and distance to the nearest red line if clear."""
    activity = vocab.activity(activity)
    bbox = tuple(shapely.bounds(footprint))
    footprint_ha = area_ha(footprint)
    zones: list[dict[str, Any]] = []
    for z in store.zones(PROTECTION_LAYERS, bbox=bbox):
        if not shapely.intersects(footprint, z.geometry):
            continue
        overlap = area_ha(shapely.intersection(footprint, z.geometry))
        if overlap <= 1e-6:
            continue
        severity, rule = rules.grade(z.kind, z.regime, activity)
        zones.append(
            {
                "layer": z.kind,
                "layer_version": z.attrs.get("layer_version"),
                "name": z.name,
                "regime": z.regime,
                "code": z.code,
                "overlap_ha": round(overlap, 4),
                "overlap_mu": round(vocab.hectares_to_mu(overlap), 2),
                "severity": severity,
                "verdict": rules.verdict(severity),
                "rule": rule,
            }
        )
    verdict = min((z["verdict"] for z in zones), key=VERDICTS.index, default="clear")
    answer = {
        "activity": activity,
        "area_ha": round(footprint_ha, 4),
        "area_mu": round(vocab.hectares_to_mu(footprint_ha), 2),
        "verdict": verdict,
        "zones": sorted(zones, key=lambda z: (VERDICTS.index(z["verdict"]), -z["overlap_ha"])),
        "nearest_redline": None,
        "rules_version": rules.version,
        "layer_versions": {lv["kind"]: lv["version"] for lv in store.layer_versions()},
    }
    if not any(z["layer"] == "redline" for z in zones):
        answer["nearest_redline"] = nearest_redline(store, footprint)
    return answer


def nearest_redline(store: Store, geom) -> dict | None:
    """The nearest red-line zone and its geodesic distance in metres (searching outward)."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    for pad in (0.1, 0.5, 2.0, 10.0, None):
        box = None if pad is None else (minx - pad, miny - pad, maxx + pad, maxy + pad)
        zones = store.zones(("redline",), bbox=box)
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
    dist, zone = min(((distance_m(geom, geoms[i]), zones[i]) for i in shortlist), key=lambda t: t[0])
    return {"name": zone.name, "code": zone.code, "distance_m": round(dist, 1)}
