"""Re-checks: open flags against new layer versions; rectified sites seen again by new imagery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from redline.change import resolve_product
from redline.recheck import recheck_flags
from redline.scan import scan_product
from redline.workflow import move

from .conftest import blank, pixel_box

REDLINE = str(Path(sys.executable).with_name("redline"))


@pytest.fixture
def flags(store, load_zones, write_raster, class_table):
    load_zones("redline", [(pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"})])
    load_zones("reserve", [(pixel_box(350, 300, 700, 600), {"zone": "核心区", "name": "R"})])
    arr = blank()
    arr[100:140, 100:140] = 6  # farmland in the red line: medium
    arr[50:90, 300:340] = 1  # mining in the red line: high
    arr[400:440, 400:440] = 1  # mining in the reserve core: critical
    scan_product(store, resolve_product(write_raster(arr), class_table=class_table, acquired_after="2026-06-01"))
    by = {(f["activity"], f["zone_layer"]): f["id"] for f in store.flags()}
    return by[("farmland", "redline")], by[("mining", "redline")], by[("mining", "reserve")]


def test_new_layer_versions_re_evaluate_open_flags_and_record_it(store, store_url, flags, load_zones):
    farm, mine_rl, mine_core = flags
    move(store, farm, "dispatched", "inspector")
    move(store, farm, "false_positive", "inspector")  # judged: not re-checked
    assert recheck_flags(store)["rechecked"] == []  # nothing new loaded: nothing to do
    load_zones(
        "redline", [(pixel_box(0, 0, 200, 600), {"name": "RL-B", "function_type": "防风固沙"})], name="redline2.gpkg"
    )  # the red line no longer reaches the mine at columns 300-340
    load_zones(
        "reserve", [(pixel_box(350, 300, 700, 600), {"zone": "缓冲区", "name": "R"})], name="reserve2.gpkg"
    )  # the core became buffer
    dry = recheck_flags(store, dry_run=True)
    assert len(dry["rechecked"]) == 2 and store.history(mine_core)[-1]["action"] != "recheck"

    out = recheck_flags(store)
    assert (out["severity_changed"], out["outside_zones"]) == (2, 1)
    core = store.flag(mine_core)
    assert (core["severity"], core["zone_regime"], core["status"]) == ("high", "buffer", "new")
    assert [(c["layer"], c["layer_version"], c["severity"]) for c in store.conflicts(mine_core)] == [
        ("reserve", 2, "high")
    ]
    h = store.history(mine_core)[-1]
    assert h["action"] == "recheck" and h["actor"] == "recheck"
    assert (h["detail"]["layer_versions"]["from"]["reserve"], h["detail"]["layer_versions"]["to"]["reserve"]) == (1, 2)
    assert h["detail"]["severity"] == {"from": "critical", "to": "high"}
    outside = store.flag(mine_rl)
    assert (outside["severity"], outside["zone_layer"], outside["status"]) == (None, None, "new")
    assert store.conflicts(mine_rl) == [] and store.history(mine_rl)[-1]["detail"]["outside_zones"]
    assert store.flag(farm)["layer_versions"]["redline"] == 1  # false positive left alone
    assert recheck_flags(store)["rechecked"] == []  # a second run is a no-op

    env = {**os.environ, "REDLINE_DATABASE_URL": store_url}
    proc = subprocess.run([REDLINE, "recheck", "--json"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["open_flags"] == 2


def rectify(store, fid):
    for to in ("dispatched", "verified_violation", "rectifying", "rectified"):
        move(store, fid, to, "inspector")


def test_new_imagery_over_a_rectified_flag_records_recovery_or_persistence(store, flags, write_raster, class_table):
    _, _, mine = flags
    rectify(store, mine)
    later = date.today() + timedelta(days=30)

    def scan(name, arr, day):
        return scan_product(
            store, resolve_product(write_raster(arr, name), class_table=class_table, acquired_after=day.isoformat())
        )

    def recovery():
        return [h["detail"] for h in store.history(mine) if h["action"] == "recovery"]

    before = blank()
    before[10, 10] = 2
    assert scan("before.tif", before, date.today() - timedelta(days=200)).recovery == []  # older than the works

    cloudy = blank()
    cloudy[350:500, 350:500] = 254  # the site is under cloud
    assert scan("cloudy.tif", cloudy, later).recovery == [] and recovery() == []

    clear = blank()
    clear[20, 20] = 2
    res = scan("clear.tif", clear, later)
    assert [(v["flag_id"], v["verdict"], v["changed_fraction"]) for v in res.recovery] == [(mine, "recovered", 0.0)]
    assert recovery()[-1]["observed_fraction"] == pytest.approx(1.0) and recovery()[-1]["scan_id"] == res.scan_id

    still = blank()
    still[405:440, 400:440] = 1  # the pit is still there
    res = scan("still.tif", still, later + timedelta(days=30))
    (v,) = res.recovery
    assert (v["verdict"], v["activities"]) == ("persists", ["mining"]) and v["changed_fraction"] > 0.8
    assert store.flag(mine)["status"] == "rectified"  # evidence only: a person closes the flag
    assert [d["verdict"] for d in recovery()] == ["recovered", "persists"]
