"""Problems from sources other than our scans — national leads, ground reports — as flags.

A problem is a lon/lat geometry (a point stands for the ground within :data:`POINT_RADIUS_M`
of it) with an activity, a day and its source's own reference. It is judged the way a scan
judges a patch (:class:`redline.overlay.Overlay`, the rules, :func:`redline.scan.flag_fields`)
and matched to the existing flags the way a scan matches (:func:`redline.scan.match_flag`): where
it overlaps a flag it is a new observation of that flag (never a duplicate); elsewhere it is a
new flag with ``source`` national | ground and ``source_ref``. Either way the observation
row carries the source and no scan (``observations.scan_id`` is empty: see
:mod:`redline.store.schema`), and the audit says who recorded what.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import shapely

from . import vocab
from .clock import now
from .config import DEFAULTS, Settings
from .errors import InputError
from .geo import GEOD, area_ha, polygonal
from .model import PROBLEM_SOURCES
from .overlay import Overlay
from .patches import Patch
from .rules import PROTECTION_LAYERS, Rules, load_rules
from .scan import flag_fields, match_flag
from .store import Store

# a point problem (a lead's coordinates, an inspector's GPS fix) stands for this much ground
POINT_RADIUS_M = 30.0
_CIRCLE_STEPS = 32


def around(point, radius_m: float = POINT_RADIUS_M):
    """The geodesic circle of ``radius_m`` metres around a lon/lat point, as a polygon."""
    lon, lat = float(point.x), float(point.y)
    az = np.linspace(0.0, 360.0, _CIRCLE_STEPS, endpoint=False)
    xs, ys, _ = GEOD.fwd(np.full_like(az, lon), np.full_like(az, lat), az, np.full_like(az, radius_m))
    return shapely.Polygon(np.column_stack([xs, ys]))


def problem_area(geom, what: str):
    """A problem's lon/lat geometry as the polygon a flag holds: polygons as they are, a point
    (or a line: its middle) as the ground around it."""
    if geom is None or geom.is_empty:
        raise InputError(f"{what}: no geometry")
    minx, miny, maxx, maxy = geom.bounds
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InputError(f"{what}: coordinates are not finite numbers")
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InputError(f"{what}: ({minx:.4f}, {miny:.4f}) is not a longitude/latitude")
    area = polygonal(geom)
    if area is None:
        area = around(shapely.point_on_surface(geom))
    elif not area.is_valid:
        area = polygonal(shapely.make_valid(area))
        if area is None:
            raise InputError(f"{what}: the polygon has no area")
    return area


@dataclass
class Problem:
    """One problem to record: where (lon/lat), what, when, and what its source calls it."""

    geometry: object  # lon/lat, any geometry type (see problem_area)
    activity: str
    observed_on: date
    source: str  # national | ground
    source_ref: str
    confidence: str = "nominal"
    note: str | None = None

    def __post_init__(self) -> None:
        if self.source not in PROBLEM_SOURCES or self.source == "scan":
            raise InputError(f"unknown problem source {self.source!r}; expected national or ground")
        self.activity = vocab.activity(self.activity)


@dataclass
class Recorded:
    """What recording one problem did: the flag, whether it is new, and its zone (None: the
    problem lies in no red-line or reserve zone)."""

    flag_id: int
    new: bool
    status: str
    zone: str | None
    admin_code: str | None = None


class Recorder:
    """Records problems into ``store`` against the current layer versions and rules."""

    def __init__(self, store: Store, settings: Settings = DEFAULTS, rules: Rules | None = None):
        self.store = store
        self.rules = rules or load_rules(settings.rules_path)
        self.versions = {lv["kind"]: lv["version"] for lv in store.layer_versions()}
        if not any(k in self.versions for k in PROTECTION_LAYERS):
            raise InputError("no red-line or reserve layer is loaded; run `redline layers load redline FILE` first")

    def judge(self, problem: Problem, area) -> tuple[dict, list[dict], bool]:
        """(flag fields, conflict records, permitted) of a problem's area, as a scan judges a patch."""
        zones = self.store.zones(vocab.LAYER_KINDS, bbox=tuple(shapely.bounds(area)))
        ha = area_ha(area)
        patch = Patch(area, problem.activity, problem.confidence, None, 0, ha)
        found = Overlay(zones, self.rules, problem.observed_on).assess([patch])
        if found:
            a = found[0]
            return flag_fields(a, self.versions, self.rules), [c.record() for c in a.conflicts], a.permit is not None
        # in no protection zone: a problem all the same (a lead must be answered), judged by nobody
        inside = shapely.point_on_surface(area)
        admin = next((z for z in zones if z.kind == "admin" and z.geometry.contains(inside)), None)
        fields = {
            "severity": None,
            "activity": problem.activity,
            "confidence": problem.confidence,
            "score": None,
            "area_ha": round(ha, 4),
            "area_mu": round(vocab.hectares_to_mu(ha), 3),
            "zone_layer": None,
            "zone_name": None,
            "zone_regime": None,
            "admin_code": admin.code if admin else None,
            "admin_name": admin.name if admin else None,
            "permit_id": None,
            "layer_versions": self.versions,
            "rules_version": self.rules.version,
            "rule": None,
        }
        return fields, [], False

    def record(self, problem: Problem, actor: str, what: str = "problem") -> Recorded:
        """Record one problem (inside the caller's transaction, or its own)."""
        store = self.store
        area = problem_area(problem.geometry, what)
        fields, conflicts, permitted = self.judge(problem, area)
        day = problem.observed_on.isoformat()
        detail = {"source": problem.source, "source_ref": problem.source_ref}
        with store.transaction():
            flag = match_flag(store, area, {})
            if flag is None:
                status = "permitted" if permitted else "new"
                fid = store.insert_flag(
                    {
                        **fields,
                        "status": status,
                        "first_seen": day,
                        "last_seen": day,
                        "n_observations": 1,
                        "source": problem.source,
                        "source_ref": problem.source_ref,
                        "created_at": now(),
                    },
                    area,
                )
                store.replace_conflicts(fid, conflicts)
                store.audit(fid, actor, "created", {**detail, "status": status, "note": problem.note})
                out = Recorded(fid, True, status, fields["zone_name"], fields["admin_code"])
            else:
                fid = flag["id"]
                # another source's sighting: counts and dates; the flag's shape and judgement stay
                # those of what saw it (a lead's point must not replace a scan's outline)
                store.update_flag(
                    fid,
                    {
                        "first_seen": min(flag["first_seen"], day),
                        "last_seen": max(flag["last_seen"], day),
                        "n_observations": flag["n_observations"] + 1,
                    },
                )
                store.audit(fid, actor, "observed", {**detail, "status": flag["status"], "note": problem.note})
                out = Recorded(fid, False, flag["status"], flag["zone_name"], flag["admin_code"])
            store.add_observation(
                {
                    "flag_id": fid,
                    "scan_id": None,
                    "observed_on": day,
                    "activity": problem.activity,
                    "confidence": problem.confidence,
                    "score": None,
                    "area_ha": round(area_ha(area), 4),
                    "pixels": 0,
                    "source": problem.source,
                    "source_ref": problem.source_ref,
                },
                area,
            )
        return out
