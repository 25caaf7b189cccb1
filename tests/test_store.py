"""The store (SQLite, and PostGIS where the fixture is parametrised): transactions, schema guard,
spatial queries."""

from __future__ import annotations

import sqlite3

import pytest
import shapely

from redline.errors import NotFoundError, StoreError
from redline.store import FlagFilter, open_store
from redline.store.sqlite import SCHEMA_VERSION

from .rows import flag_row

FLAG = flag_row()


def test_transaction_rolls_back_everything(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
            store.insert_flag(FLAG, shapely.box(109, 39, 109.01, 39.01))
            raise RuntimeError("crash")
    assert store.flags() == []


def test_bbox_query_uses_the_index(store):
    a = store.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
    store.insert_flag(FLAG, shapely.box(109, 39, 109.01, 39.01))
    assert [f["id"] for f in store.flags(FlagFilter(bbox=(107.9, 38.9, 108.005, 39.005)))] == [a]
    store.update_flag(a, {"status": "dispatched"}, shapely.box(110, 39, 110.01, 39.01))
    assert store.flags(FlagFilter(bbox=(107.9, 38.9, 108.005, 39.005))) == []
    assert store.flag(a)["status"] == "dispatched"


def test_region_queries_are_exact_in_the_store(store):
    """An L-shaped region: its bounding box holds a flag the region itself does not touch.
    The store answers exactly, so LIMIT, paging and COUNT agree with what a check shows."""
    inside = [store.insert_flag(FLAG, shapely.box(108 + i * 0.02, 39, 108.01 + i * 0.02, 39.01)) for i in range(3)]
    notch = store.insert_flag(FLAG, shapely.box(108.05, 39.05, 108.06, 39.06))  # in the bbox, not the region
    region = shapely.Polygon(
        [(107.99, 38.99), (108.1, 38.99), (108.1, 39.02), (108.02, 39.02), (108.02, 39.1), (107.99, 39.1)]
    )
    assert shapely.box(*region.bounds).intersects(store.flag(notch)["geometry"])
    assert [f["id"] for f in store.flags(FlagFilter(region=region))] == inside
    assert store.count_flags(FlagFilter(region=region)) == 3
    assert [f["id"] for f in store.flags(FlagFilter(region=region, limit=2, after_id=inside[0]))] == inside[1:]
    assert store.count_flags(FlagFilter(bbox=region.bounds)) == 4


def test_missing_flag(store):
    with pytest.raises(NotFoundError):
        store.flag(42)
    with pytest.raises(NotFoundError):
        store.update_flag(42, {"status": "closed"})


def test_refuses_newer_schema_and_foreign_files(tmp_path):
    path = tmp_path / "s.db"
    open_store(f"sqlite:///{path}").close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(f"sqlite:///{path}")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a redline store"):
        open_store(f"sqlite:///{junk}")
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path / 'no' / 'dir.db'}")


def test_reopen_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    s = open_store(url)
    fid = s.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
    s.close()
    s = open_store(url)
    assert s.flag(fid)["layer_versions"] == {"redline": 1}
    s.close()


def test_the_flag_record_is_declared_once():
    """The flags table, the store's rows, the API's model and the digest come from redline.model.Flag."""
    from api.schemas import CheckAnswer, FlagDetail
    from redline.digest import FLAG_KEYS
    from redline.model import FLAG_FIELDS as MODEL_FIELDS
    from redline.model import Flag
    from redline.store import FLAG_FIELDS
    from redline.store.schema import flags

    assert FLAG_FIELDS == MODEL_FIELDS == tuple(Flag.model_fields)
    # the geometry, then the fields added later (migration 0006: source, source_ref)
    assert [c.name for c in flags.columns] == [*FLAG_FIELDS[:-2], "geom", *FLAG_FIELDS[-2:]]
    assert issubclass(FlagDetail, Flag) and CheckAnswer.model_fields["flags"].annotation == list[Flag]
    assert set(FLAG_KEYS) < set(FLAG_FIELDS)


def test_rows_round_trip_json_and_dates(store):
    """JSON columns come back as the objects written, dates and timestamps as ISO text."""
    from datetime import date

    fid = store.insert_flag(
        {**FLAG, "first_seen": date(2026, 6, 1), "layer_versions": {"redline": 2, "保护区": 1}},
        shapely.box(108, 39, 108.01, 39.01),
    )
    f = store.flag(fid)
    assert (f["first_seen"], f["layer_versions"]) == ("2026-06-01", {"redline": 2, "保护区": 1})
    store.audit(fid, "王伟", "note", {"text": "现场", "when": date(2026, 6, 2)})
    (entry,) = store.history(fid)
    assert entry["detail"] == {"text": "现场", "when": "2026-06-02"} and entry["at"].endswith("+00:00")
    store.add_job({"id": "j", "kind": "scan", "state": "accepted", "progress": 0, "actor": "a"})
    assert (store.job("j")["request"], store.job("j")["result"]) == ({}, None)
    ids = [store.insert_flag(FLAG, shapely.box(108 + i, 39, 108.01 + i, 39.01)) for i in range(5)]
    assert [f["id"] for f in store.flags(FlagFilter(status=["new", "closed", "new"], severity=["high"]))] == [fid, *ids]


def test_what_a_recheck_may_change_is_declared_with_the_flag():
    from redline.model import FLAG_JUDGED
    from redline.recheck import JUDGED

    assert JUDGED == FLAG_JUDGED
    assert {"severity", "zone_name", "permit_id", "rules_version"} <= set(JUDGED)
    assert not {"activity", "area_ha", "status", "first_seen"} & set(JUDGED)
