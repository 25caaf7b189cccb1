"""Records defined once (redline.model): the tables hold their fields, both stores return
rows with exactly those fields, and the API serves the same models."""

from __future__ import annotations

import pytest
import shapely

from redline import model
from redline.layers import LoadReport
from redline.model import Conflict, HistoryEntry, Observation, Scan, Zone, fields_of
from redline.store import schema as S

from .test_store import FLAG

# record -> (table, fields another table supplies)
TABLES = {
    Conflict: (S.conflicts, ()),
    HistoryEntry: (S.audit, ()),
    Scan: (S.scans, ()),
    Observation: (S.observations, ("product_id", "sensor")),  # the scan's
}
KINDS = {"bigint": S.ID, "int": S.INT, "float": S.REAL, "str": S.TEXT, "date": S.DATE, "timestamp": S.TIMESTAMP}


@pytest.mark.parametrize("record", list(TABLES), ids=lambda r: r.__name__)
def test_tables_hold_the_records_fields(record):
    table, joined = TABLES[record]
    for spec in fields_of(record):
        if spec.name in joined:
            assert spec.name in S.scans.c and spec.nullable  # an observation may have no scan
            continue
        column = table.c[spec.name]
        assert column.nullable == spec.nullable or column.primary_key, spec.name
        if spec.kind == "json":
            assert column.type is S.JSON, spec.name
        else:
            assert column.type is KINDS[spec.kind], spec.name
    # every column but the geometry and the keys the record leaves to the store is a field
    assert {c.name for c in table.c} - set(record.model_fields) <= {"geom", "footprint"}


SCAN = {
    "checksum": "c1",
    "product_id": "GF1-2026-06",
    "mode": "class",
    "sensor": "GF-1",
    "acquired_before": "2025-06-01",
    "acquired_after": "2026-06-01",
    "files": ["a.tif"],
    "started_at": "2026-06-02T00:00:00+00:00",
    "finished_at": "2026-06-02T00:01:00+00:00",
    "state": "done",
    "stats": {"patches": 1},
    "layer_versions": {"redline": 1},
    "rules_version": "t",
    "observed_fraction": 0.9,
}


def test_store_rows_are_the_records(store):
    """Both stores answer with rows whose keys are the record's fields (geometry aside), in its
    order, and which the record accepts as they are."""
    box = shapely.box(108, 39, 108.01, 39.01)
    store.add_layer_version(LoadReport("redline", "t", "EPSG:4326", "-", 1, [Zone("redline", "RL", "redline", box)]))
    (zone,) = store.zones(("redline",))
    sid = store.insert_scan(SCAN, shapely.box(107, 38, 109, 40))
    fid = store.insert_flag(FLAG, box)
    store.add_observation(
        {
            "flag_id": fid,
            "scan_id": sid,
            "observed_on": "2026-06-01",
            "activity": "mining",
            "confidence": "high",
            "score": None,
            "area_ha": 1.0,
            "pixels": 9,
        },
        box,
    )
    conflict = {"zone_id": zone.id, "layer": "redline", "layer_version": 1, "zone_name": "RL", "regime": "redline"}
    store.replace_conflicts(fid, [{**conflict, "overlap_ha": 1.0, "overlap_mu": 15.0, "severity": "high", "rule": "r"}])
    store.audit(fid, "王伟", "status", {"from": "new", "to": "dispatched"})

    (scan,) = store.scans()
    (obs,) = store.observations(fid)
    (conf,) = store.conflicts(fid)
    (entry,) = store.history(fid)
    for record, row in ((Scan, scan), (Observation, obs), (Conflict, conf), (HistoryEntry, entry)):
        geometry = {"footprint", "geometry"} & set(row)
        assert set(row) - geometry == set(record.model_fields), record.__name__
        assert record.model_validate(row).model_dump() == {k: row[k] for k in record.model_fields}
    assert isinstance(scan["footprint"], shapely.Geometry) and isinstance(obs["geometry"], shapely.Geometry)
    assert (obs["product_id"], obs["sensor"], obs["source"]) == ("GF1-2026-06", "GF-1", "scan")
    assert entry["detail"] == {"from": "new", "to": "dispatched"} and entry["flag_id"] == fid


def test_the_api_serves_the_records():
    from api import schemas

    assert schemas.CheckAnswer is model.CheckAnswer
    assert schemas.FlagDetail is model.FlagDetail and schemas.HistoryEntry is model.HistoryEntry
    # no second declaration of these shapes in the API
    for name in ("Conflict", "Observation", "CheckZone", "CheckScan", "CheckSummary", "Area", "Flag"):
        assert not hasattr(schemas, name) or getattr(schemas, name) is getattr(model, name), name
