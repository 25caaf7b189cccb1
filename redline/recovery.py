"""Close-out evidence: does new imagery still see change on a ``rectified`` flag?

A flag in ``rectified`` state waits for someone to close it. When a scan whose
imagery was acquired on or after the day it was marked rectified sees most of the
flag's ground (``OBSERVED_MIN`` of its area, from the scan footprint), the scan
records in the flag's history whether human-activity change persists there (changed
patches, after the MMU, cover ``PERSIST_MIN`` or more of the flag) or the site has
recovered (e.g. revegetated: no change detected). The verdict is evidence for the
inspector; the status is not changed by a machine.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import shapely
from shapely import STRtree

from .geo import area_ha
from .store import FlagFilter, Store

OBSERVED_MIN = 0.5  # share of the flag's area the new imagery must have seen
PERSIST_MIN = 0.1  # share of the flag's area still changed for the change to "persist"


def rectified_on(store: Store, flag_id: int) -> str | None:
    """ISO day the flag was last moved to ``rectified`` (None when the history does not say)."""
    day = None
    for h in store.history(flag_id):
        if h["action"] == "status" and h["detail"].get("to") == "rectified":
            day = h["at"][:10]
    return day


class RecoveryCheck:
    """Collects, over a scan's patch batches, the changed ground on rectified flags."""

    def __init__(self, store: Store, bbox, on: date):
        self.on = on
        self.flags = []
        for f in store.flags(FlagFilter(status=["rectified"], bbox=tuple(bbox))):
            since = rectified_on(store, f["id"])
            if since is None or since <= on.isoformat():  # imagery from before the works is no evidence
                self.flags.append(f)
        self._geoms = np.array([f["geometry"] for f in self.flags], dtype=object)
        self._tree = STRtree(self._geoms) if self.flags else None
        self._changed: dict[int, list] = {}

    def add(self, patches) -> None:
        if self._tree is None or not patches:
            return
        geoms = np.array([p.geometry for p in patches], dtype=object)
        pi, fi = self._tree.query(geoms, predicate="intersects")
        for p, f in zip(pi, fi):
            part = shapely.intersection(geoms[p], self._geoms[f])
            if not part.is_empty:
                self._changed.setdefault(int(f), []).append((part, patches[p].activity))

    def verdicts(self, footprint) -> list[dict]:
        if self._tree is None or footprint is None:
            return []
        out = []
        for i, f in enumerate(self.flags):
            total = area_ha(f["geometry"])
            if total <= 0:
                continue
            observed = area_ha(shapely.intersection(f["geometry"], footprint)) / total
            if observed < OBSERVED_MIN:
                continue  # not seen well enough to say anything
            parts = self._changed.get(i, [])
            changed_ha = area_ha(shapely.union_all([g for g, _ in parts])) if parts else 0.0
            share = changed_ha / total
            out.append(
                {
                    "flag_id": f["id"],
                    "verdict": "persists" if share >= PERSIST_MIN else "recovered",
                    "observed_fraction": round(observed, 4),
                    "changed_fraction": round(share, 4),
                    "changed_ha": round(changed_ha, 4),
                    "activities": sorted({a for _, a in parts}),
                    "observed_on": self.on.isoformat(),
                }
            )
        return out

    @staticmethod
    def record(store: Store, verdicts: list[dict], scan_id: int, product) -> None:
        """Write the verdicts into the flags' history (inside the scan's transaction)."""
        for v in verdicts:
            store.audit(
                v["flag_id"],
                "scan",
                "recovery",
                {
                    **{k: x for k, x in v.items() if k != "flag_id"},
                    "scan_id": scan_id,
                    "product_id": product.product_id,
                },
            )
