"""Scan identity: the ledger key covers everything that changes a scan's result, nothing else.

A re-scan with a corrected table or threshold must be a new scan, not "already scanned";
the same product described again (other name, date, sensor) must be the same scan.
Thresholds are validated before anything is recorded (security issue 9, item 5).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from redline.change import ChangeProduct, resolve_product
from redline.errors import InputError
from redline.scan import scan_product
from redline.store import open_store

from .conftest import blank, pixel_box

REDLINE = [str(Path(sys.executable).with_name("redline"))]


# --- ChangeProduct.checksum -------------------------------------------------------------


@pytest.fixture
def pair(write_raster, tmp_path):
    """A land-cover pair, its transition table, and a second (different) before raster."""
    before = np.full((64, 64), 30, dtype=np.uint8)
    after = before.copy()
    after[10:30, 10:30] = 50
    other_before = before.copy()
    other_before[0, 0] = 40
    table = tmp_path / "t.csv"
    table.write_text("before,after,activity\n30,50,construction\n")
    return {
        "before": write_raster(before, "b.tif", nodata=0),
        "after": write_raster(after, "a.tif", nodata=0),
        "other_before": write_raster(other_before, "b2.tif", nodata=0),
        "table": table,
    }


def transition(pair, **update) -> ChangeProduct:
    base = dict(
        product_id="lc",
        mode="transition",
        path=pair["after"],
        before_path=pair["before"],
        transition_table=pair["table"],
        acquired_after="2026-06-01",
    )
    return ChangeProduct(**{**base, **update})


def test_checksum_covers_the_before_raster_of_a_pair(pair):
    assert transition(pair).checksum() != transition(pair, before_path=pair["other_before"]).checksum()


def test_checksum_covers_the_after_raster(pair):
    assert transition(pair).checksum() != transition(pair, path=pair["other_before"]).checksum()


def test_checksum_tells_before_from_after(pair):
    swapped = transition(pair, path=pair["before"], before_path=pair["after"])
    assert transition(pair).checksum() != swapped.checksum()


def test_checksum_covers_the_transition_table_content(pair, tmp_path):
    first = transition(pair).checksum()
    pair["table"].write_text("before,after,activity\n30,50,mining\n")  # corrected in place, same path
    assert transition(pair).checksum() != first


def test_checksum_covers_the_class_table_content(write_raster, class_table):
    arr = blank(64, 64)
    arr[5:20, 5:20] = 1
    p = ChangeProduct(product_id="c", path=write_raster(arr), class_table=class_table, acquired_after="2026-06-01")
    first = p.checksum()
    class_table.write_text(class_table.read_text().replace("1,mining,high", "1,industrial,high"))
    assert p.checksum() != first


def test_checksum_covers_the_mode(write_raster, class_table):
    arr = blank(64, 64)
    path = write_raster(arr)
    as_class = ChangeProduct(product_id="c", path=path, class_table=class_table, acquired_after="2026-06-01")
    as_prob = ChangeProduct(product_id="c", mode="probability", path=path, acquired_after="2026-06-01")
    assert as_class.checksum() != as_prob.checksum()


@pytest.mark.parametrize(
    "update", [{"thresholds": (0.5, 0.7, 0.95)}, {"thresholds": (0.6,)}, {"activity": "mining"}, {"scale": 255.0}]
)
def test_checksum_covers_probability_parameters(write_raster, update):
    path = write_raster(np.zeros((32, 32), dtype=np.uint8), nodata=None)
    base = ChangeProduct(product_id="p", mode="probability", path=path, acquired_after="2026-06-01")
    assert base.checksum() != base.model_copy(update=update).checksum()


def test_checksum_ignores_what_does_not_change_the_result(pair, tmp_path):
    """Another name, date or sensor for the same content, or a copy of the files, is the same scan."""
    copy = {k: tmp_path / f"copy-{Path(v).name}" for k, v in pair.items()}
    for k, v in pair.items():
        copy[k].write_bytes(Path(v).read_bytes())
    same = transition(copy, product_id="renamed", sensor="GF-1", acquired_after="2026-07-01")
    assert transition(pair).checksum() == same.checksum()


def test_checksum_is_stable_and_hex(pair):
    a, b = transition(pair).checksum(), transition(pair).checksum()
    assert a == b and len(a) == 64 and int(a, 16) >= 0


# --- thresholds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "thresholds,match",
    [
        ((float("nan"),), "finite"),
        ((0.5, float("nan")), "finite"),
        ((float("inf"),), "finite"),
        ((0.5, 1.5), r"\(0, 1\]"),
        ((-0.1, 0.5), r"\(0, 1\]"),
        ((0.0, 0.5), r"\(0, 1\]"),
        ((0.9, 0.5), "strictly ascending"),
        ((0.5, 0.5), "strictly ascending"),
        ((), "1 to 3"),
        ((0.2, 0.4, 0.6, 0.8), "1 to 3"),
        ("0.5,abc", "numbers separated by commas"),
    ],
)
def test_bad_thresholds_are_refused(write_raster, thresholds, match):
    with pytest.raises(ValidationError, match=match):
        ChangeProduct(
            product_id="p",
            mode="probability",
            path=write_raster(blank()),
            thresholds=thresholds,
            acquired_after="2026-01-01",
        )


@pytest.mark.parametrize(
    "thresholds,expected",
    [((1.0,), (1.0,)), ((0.01, 0.99, 1.0), (0.01, 0.99, 1.0)), ("0.3,0.6", (0.3, 0.6)), (0.4, (0.4,))],
)
def test_good_thresholds_are_kept(write_raster, thresholds, expected):
    p = ChangeProduct(
        product_id="p",
        mode="probability",
        path=write_raster(blank()),
        thresholds=thresholds,
        acquired_after="2026-01-01",
    )
    assert p.thresholds == expected


def test_resolve_product_names_the_bad_thresholds(write_raster):
    path = write_raster(blank())
    with pytest.raises(InputError, match="thresholds.*finite"):
        resolve_product(path, mode="probability", thresholds="nan", acquired_after="2026-01-01")
    with pytest.raises(InputError, match="thresholds.*numbers"):
        resolve_product(path, mode="probability", thresholds="0.5;0.7", acquired_after="2026-01-01")


# --- through a scan: a corrected product is a new scan ----------------------------------


@pytest.fixture
def redline_zone(load_zones):
    load_zones("redline", [(pixel_box(0, 0, 64, 64), {"name": "RL", "function_type": "x"})])


def test_rescan_with_a_corrected_transition_table_is_not_already_scanned(store, redline_zone, pair):
    first = scan_product(store, transition(pair))
    pair["table"].write_text("before,after,activity\n30,50,mining\n")
    second = scan_product(store, transition(pair))
    assert not first.skipped and not second.skipped and first.checksum != second.checksum
    assert len(store.scans()) == 2
    assert scan_product(store, transition(pair)).skipped  # and the corrected one only once


def test_rescan_with_other_thresholds_is_a_new_scan(store, redline_zone, write_raster):
    arr = np.zeros((64, 64), dtype=np.float32)
    arr[10:40, 10:40] = 0.8
    path = write_raster(arr, "prob.tif", nodata=None)
    p = ChangeProduct(product_id="p", mode="probability", path=path, acquired_after="2026-06-01", activity="mining")
    assert scan_product(store, p).patches == 1
    strict = scan_product(store, p.model_copy(update={"thresholds": (0.9,)}))
    assert not strict.skipped and strict.patches == 0  # 0.8 < 0.9: nothing passes


# --- through the command line ------------------------------------------------------------


def run(*args, db):
    env = {**os.environ, "REDLINE_DATABASE_URL": db}
    return subprocess.run([*REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def test_cli_nan_thresholds_fail_in_one_line_and_record_nothing(tmp_path, write_raster):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    region = tmp_path / "rl.geojson"
    import geopandas as gpd

    gpd.GeoDataFrame(
        {"name": ["RL"], "function_type": ["x"]}, geometry=[pixel_box(0, 0, 64, 64)], crs="EPSG:32649"
    ).to_crs(4326).to_file(region)
    assert run("layers", "load", "redline", region, db=db).returncode == 0
    arr = np.zeros((64, 64), dtype=np.float32)
    arr[10:40, 10:40] = 0.8
    prob = write_raster(arr, "prob.tif", nodata=None)
    common = ("--mode", "probability", "--activity", "mining", "--acquired-after", "2026-06-01")
    for bad in ("nan", "0.5,nan", "inf", "0.9,0.5", "2", "abc"):
        proc = run("scan", prob, *common, "--thresholds", bad, db=db)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "thresholds" in errors[0], proc.stderr
    store = open_store(db)
    try:
        assert store.scans() == [] and store.flags() == []
    finally:
        store.close()
    out = run("scan", prob, *common, "--thresholds", "0.5,0.7", "--json", db=db)
    assert out.returncode == 0, out.stderr
    (res,) = json.loads(out.stdout)
    assert not res["skipped"] and (res["patches"], res["conflicts"]) == (1, 1)
    again = run("scan", prob, *common, "--thresholds", "0.5,0.7", "--json", db=db)
    assert json.loads(again.stdout)[0]["skipped"]


def test_cli_main_in_process_refuses_nan_thresholds(tmp_path, write_raster, monkeypatch, capsys):
    from redline.cli import main

    monkeypatch.setenv("REDLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'm.db'}")
    prob = write_raster(np.zeros((16, 16), dtype=np.float32), "p.tif", nodata=None)
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", str(prob), "--mode", "probability", "--thresholds", "nan", "--acquired-after", "2026-06-01"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "thresholds" in err and "Traceback" not in err
