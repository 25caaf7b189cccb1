"""Re-checks: open flags re-evaluated when a new red-line / reserve layer version (or rule set) arrives.

A flag remembers the layer versions and the rules version it was last judged
against. When the current red-line or reserve version, or the rules version,
differs, the flag's geometry is judged again exactly as a scan would judge a patch
(:class:`redline.overlay.Overlay`, permits valid on the day it was last seen): zones,
conflicts, severity, admin unit. The change is recorded in the flag's history
(``action = "recheck"``, from/to versions, severity and zone) — also when the
verdict is unchanged, so the history shows which versions it was checked against.
A flag no longer inside any zone keeps its status (a person closes it) but loses its
severity and zone. Status is never changed by a re-check. Running it again is a no-op.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import shapely

from .config import DEFAULTS, Settings
from .errors import InputError
from .model import FLAG_JUDGED
from .overlay import Overlay
from .patches import Patch
from .rules import PROTECTION_LAYERS, Rules, load_rules
from .scan import flag_fields
from .store import FlagFilter, Store
from .vocab import FLAG_STATUSES, LAYER_KINDS

CLOSED = ("closed", "false_positive")  # judged and done with: not re-checked
OPEN = tuple(s for s in FLAG_STATUSES if s not in CLOSED)
JUDGED = FLAG_JUDGED  # the flag's fields the layers and rules decide (redline.model)


def _zone(f: dict) -> dict | None:
    return (
        {"layer": f["zone_layer"], "name": f["zone_name"], "regime": f["zone_regime"]} if f.get("zone_layer") else None
    )


def _stale(f: dict, versions: dict, rules: Rules) -> bool:
    have = f["layer_versions"] or {}
    return any(have.get(k) != versions.get(k) for k in PROTECTION_LAYERS) or f["rules_version"] != rules.version


def recheck_flags(
    store: Store,
    *,
    settings: Settings = DEFAULTS,
    rules: Rules | None = None,
    dry_run: bool = False,
    actor: str = "recheck",
) -> dict:
    """Re-evaluate open flags judged against older layer or rules versions; returns what changed."""
    rules = rules or load_rules(settings.rules_path)
    versions = {lv["kind"]: lv["version"] for lv in store.layer_versions()}
    if not any(k in versions for k in PROTECTION_LAYERS):
        raise InputError("no red-line or reserve layer is loaded; run `redline layers load redline FILE` first")
    flags = store.flags(FlagFilter(status=list(OPEN)), with_geometry=False)
    stale = [store.flag(f["id"]) for f in flags if _stale(f, versions, rules)]  # geometry only where needed
    out: dict[str, Any] = {
        "layer_versions": versions,
        "rules_version": rules.version,
        "open_flags": len(flags),
        "rechecked": [],
        "severity_changed": 0,
        "outside_zones": 0,
        "dry_run": dry_run,
    }
    if not stale:
        return out
    bbox = tuple(shapely.bounds(shapely.union_all([shapely.envelope(f["geometry"]) for f in stale])))
    zones = store.zones(LAYER_KINDS, bbox=bbox)
    by_day: dict[str, list[dict]] = defaultdict(list)
    for f in stale:
        by_day[f["last_seen"]].append(f)
    plans = []
    for day, group in sorted(by_day.items()):
        overlay = Overlay(zones, rules, date.fromisoformat(day))  # permits valid on the day last seen
        for f in group:
            patch = Patch(f["geometry"], f["activity"], f["confidence"], f["score"], 0, f["area_ha"])
            (a,) = overlay.assess([patch]) or (None,)
            if a is not None:
                fields = {k: v for k, v in flag_fields(a, versions, rules).items() if k in JUDGED}
                if fields["permit_id"] is None:
                    fields.pop("permit_id")  # as a scan: a permit once matched is not forgotten
                conflicts = [c.record() for c in a.conflicts]
            else:
                fields = {
                    "severity": None,
                    "zone_layer": None,
                    "zone_name": None,
                    "zone_regime": None,
                    "rule": None,
                    "layer_versions": versions,
                    "rules_version": rules.version,
                }
                conflicts = []
            change = {
                "flag_id": f["id"],
                "status": f["status"],
                "layer_versions": {"from": f["layer_versions"], "to": versions},
                "rules_version": {"from": f["rules_version"], "to": rules.version},
                "severity": {"from": f["severity"], "to": fields["severity"]},
                "zone": {"from": _zone(f), "to": _zone(fields)},
                "outside_zones": a is None,
                "conflicts": len(conflicts),
            }
            plans.append((f["id"], fields, conflicts, change))
            out["rechecked"].append(change)
            out["severity_changed"] += change["severity"]["from"] != change["severity"]["to"]
            out["outside_zones"] += a is None
    if not dry_run:
        with store.transaction():  # all flags or none
            for fid, fields, conflicts, change in plans:
                store.update_flag(fid, fields)
                store.replace_conflicts(fid, conflicts)
                store.audit(fid, actor, "recheck", {k: v for k, v in change.items() if k not in ("flag_id", "status")})
    return out
