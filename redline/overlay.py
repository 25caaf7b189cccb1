"""Patches × zones → conflicts, graded by the rules.

Zones are indexed once per scan in an STRtree and prepared; a zone that contains
a patch outright costs a prepared predicate, not an intersection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import shapely
from shapely import STRtree

from . import vocab
from .geo import area_ha
from .layers import Zone
from .patches import Patch
from .rules import PROTECTION_LAYERS, Rules


@dataclass
class Conflict:
    zone: Zone
    overlap_ha: float
    severity: str
    rule: str | None

    def record(self) -> dict:
        return {
            "zone_id": self.zone.id,
            "layer": self.zone.kind,
            "layer_version": self.zone.attrs.get("layer_version", 0),
            "zone_name": self.zone.name,
            "regime": self.zone.regime,
            "overlap_ha": round(self.overlap_ha, 4),
            "overlap_mu": round(vocab.hectares_to_mu(self.overlap_ha), 3),
            "severity": self.severity,
            "rule": self.rule,
        }


@dataclass
class Assessment:
    """One patch judged against every zone it touches."""

    patch: Patch
    conflicts: list[Conflict] = field(default_factory=list)
    permit: Zone | None = None
    admin: Zone | None = None

    @property
    def strictest(self) -> Conflict:
        return max(self.conflicts, key=lambda c: (vocab.severity_rank(c.severity), c.overlap_ha))


def permit_valid(permit: Zone, on: date) -> bool:
    return (permit.valid_from is None or permit.valid_from <= on) and (permit.valid_to is None or on <= permit.valid_to)


class _Index:
    def __init__(self, zones: list[Zone]):
        self.zones = zones
        self.geoms = np.array([z.geometry for z in zones], dtype=object)
        shapely.prepare(self.geoms)
        self.tree = STRtree(self.geoms)

    def pairs(self, geoms: np.ndarray, predicate="intersects"):
        if not self.zones or not len(geoms):
            return np.empty((2, 0), dtype=int)
        return self.tree.query(geoms, predicate=predicate)


class Overlay:
    """Judge patches observed on ``on`` against zones (redline, reserve, permit, admin)."""

    def __init__(self, zones: list[Zone], rules: Rules, on: date):
        self.rules = rules
        self.protection = _Index([z for z in zones if z.kind in PROTECTION_LAYERS])
        self.permits = _Index([z for z in zones if z.kind == "permit" and permit_valid(z, on)])
        self.admin = _Index([z for z in zones if z.kind == "admin"])

    def assess(self, patches: list[Patch]) -> list[Assessment]:
        """Assessments of the patches that touch a protection zone (others are not conflicts)."""
        if not patches:
            return []
        geoms = np.array([p.geometry for p in patches], dtype=object)
        by_patch: dict[int, Assessment] = {}
        pi, zi = self.protection.pairs(geoms)
        inside = shapely.contains_properly(self.protection.geoms[zi], geoms[pi]) if len(pi) else []
        for p, z, whole in zip(pi, zi, inside):
            patch, zone = patches[p], self.protection.zones[z]
            overlap = patch.area_ha if whole else area_ha(shapely.intersection(patch.geometry, zone.geometry))
            if overlap <= 1e-6:  # touches the boundary only
                continue
            severity, rule = self.rules.grade(zone.kind, zone.regime, patch.activity)
            a = by_patch.setdefault(int(p), Assessment(patch))
            a.conflicts.append(Conflict(zone, overlap, severity or "low", rule))
        if not by_patch:
            return []
        idx = np.fromiter(by_patch, dtype=int)
        self._permits(idx, geoms, by_patch)
        points = shapely.point_on_surface(geoms[idx])
        for p, z in zip(*self.admin.pairs(points, predicate="within")):
            by_patch[int(idx[p])].admin = self.admin.zones[z]
        return [by_patch[i] for i in sorted(by_patch)]

    def _permits(self, idx: np.ndarray, geoms: np.ndarray, by_patch: dict[int, Assessment]) -> None:
        hits: dict[int, list[Zone]] = {}
        for p, z in zip(*self.permits.pairs(geoms[idx])):
            a = by_patch[int(idx[p])]
            permit = self.permits.zones[z]
            if permit.activity in (None, a.patch.activity):
                hits.setdefault(int(idx[p]), []).append(permit)
        for i, permits in hits.items():
            a = by_patch[i]
            covered = area_ha(shapely.intersection(a.patch.geometry, shapely.union_all([z.geometry for z in permits])))
            if covered >= self.rules.permit_cover * a.patch.area_ha:
                a.permit = max(permits, key=lambda z: z.geometry.intersection(a.patch.geometry).area)
