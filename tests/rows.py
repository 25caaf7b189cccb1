"""A flag row as a scan writes it (``Store.insert_flag``), for the tests that fill a store by
hand: one definition, each test changing what it is about."""

from __future__ import annotations

FLAG_ROW = {
    "status": "new",
    "severity": "high",
    "activity": "mining",
    "confidence": "high",
    "score": None,
    "area_ha": 1.0,
    "area_mu": 15.0,
    "first_seen": "2026-06-01",
    "last_seen": "2026-06-01",
    "n_observations": 1,
    "zone_layer": "redline",
    "zone_name": "RL",
    "zone_regime": "redline",
    "admin_code": "1",
    "admin_name": "A",
    "permit_id": None,
    "layer_versions": {"redline": 1},
    "rules_version": "t",
    "rule": "r",
}


def flag_row(**changes) -> dict:
    """A fresh copy of :data:`FLAG_ROW` with ``changes``."""
    return {**FLAG_ROW, "layer_versions": dict(FLAG_ROW["layer_versions"]), **changes}
