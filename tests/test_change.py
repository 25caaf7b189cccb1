"""Change products: description, tables, modes, and clear errors for bad input."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest

from redline.change import ChangeProduct, ProductReader, read_transition_table, resolve_product
from redline.errors import CRSError, InputError, MissingFileError, NotARasterError, UnknownClassError
from redline.patches import PatchExtractor

from .conftest import REAL, blank


def test_sidecar_then_tags_then_overrides(write_raster, class_table, tmp_path):
    path = write_raster(blank(), tags={"REDLINE_PRODUCT_ID": "from-tag", "REDLINE_SENSOR": "GF-1",
                                       "REDLINE_ACQUIRED_AFTER": "2026-05-01"})
    p = resolve_product(path, class_table=class_table)
    assert (p.product_id, p.sensor, p.acquired_after) == ("from-tag", "GF-1", date(2026, 5, 1))
    (tmp_path / "change.json").write_text(json.dumps({"sensor": "Sentinel-2 MSI", "acquired_before": "2025-05-01"}))
    p = resolve_product(path, class_table=class_table)
    assert (p.sensor, p.acquired_before) == ("Sentinel-2 MSI", date(2025, 5, 1))
    p = resolve_product(path, class_table=class_table, sensor="Landsat 9", product_id="X")
    assert (p.sensor, p.product_id) == ("Landsat 9", "X")


def test_missing_acquisition_date_says_where_to_give_it(write_raster, class_table):
    with pytest.raises(InputError, match="acquired_after.*CLI option"):
        resolve_product(write_raster(blank()), class_table=class_table)


def test_missing_file_and_non_raster(tmp_path, class_table):
    with pytest.raises(MissingFileError):
        resolve_product(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all" * 100)
    with pytest.raises(NotARasterError, match="not a readable raster"):
        resolve_product(bad, class_table=class_table, acquired_after="2026-01-01")


def test_raster_without_crs_is_refused(write_raster, class_table):
    path = write_raster(blank(), crs=None)
    product = ChangeProduct(product_id="x", path=path, class_table=class_table, acquired_after="2026-01-01")
    with pytest.raises(CRSError, match="no CRS"):
        ProductReader(product)


def test_unknown_class_codes_are_named(write_raster, class_table):
    arr = blank()
    arr[5, 5] = 77
    product = ChangeProduct(product_id="x", path=write_raster(arr), class_table=class_table,
                            acquired_after="2026-01-01")
    with ProductReader(product) as reader, pytest.raises(UnknownClassError, match="77"):
        list(PatchExtractor(reader).run())


def test_class_raster_must_be_integer(write_raster, class_table):
    product = ChangeProduct(product_id="x", path=write_raster(blank().astype("float32"), nodata=None),
                            class_table=class_table, acquired_after="2026-01-01")
    with pytest.raises(InputError, match="uint8 or uint16 codes"):
        ProductReader(product)


@pytest.mark.parametrize("dtype,scale,values", [("float32", None, (0.55, 0.95)), ("uint8", None, (55, 95))])
def test_probability_mode_levels(write_raster, dtype, scale, values):
    arr = np.zeros((300, 300), dtype=dtype)
    arr[10:50, 10:50] = values[0]  # nominal
    arr[100:150, 100:150] = values[1]  # highest
    path = write_raster(arr, nodata=None)
    product = ChangeProduct(product_id="p", mode="probability", path=path, activity="solar",
                            acquired_after="2026-01-01", scale=scale)
    with ProductReader(product) as reader:
        patches = sorted((p for b in PatchExtractor(reader).run() for p in b), key=lambda p: p.pixels)
    assert [(p.activity, p.confidence, p.pixels) for p in patches] == [
        ("energy", "nominal", 1600), ("energy", "highest", 2500)]
    assert patches[1].score == pytest.approx(0.95, abs=1e-6)


def test_transition_mode_and_grid_mismatch(write_raster, tmp_path):
    before = np.full((300, 300), 30, dtype=np.uint8)
    after = before.copy()
    after[20:60, 20:60] = 50  # grassland -> built-up
    after[100:140, 100:140] = 40  # grassland -> cropland
    after[200:260, 200:260] = 99  # cloud in the after image
    table = tmp_path / "t.csv"
    table.write_text("before,after,activity\n10|20|30,50,construction\n30,40,farmland\n*,99,no_observation\n")
    b, a = write_raster(before, "b.tif", nodata=0), write_raster(after, "a.tif", nodata=0)
    product = ChangeProduct(product_id="lc", mode="transition", path=a, before_path=b, transition_table=table,
                            acquired_after="2026-01-01")
    with ProductReader(product) as reader:
        ex = PatchExtractor(reader)
        patches = [p for batch in ex.run() for p in batch]
    assert sorted((p.activity, p.pixels) for p in patches) == [("construction", 1600), ("farmland", 1600)]
    assert ex.observed_pixels == 300 * 300 - 3600
    other = write_raster(before, "b2.tif", nodata=0, res=20.0)
    product = product.model_copy(update={"before_path": other})
    with pytest.raises(InputError, match="share one grid"):
        ProductReader(product)


def test_transition_table_parsing_errors(tmp_path):
    t = tmp_path / "t.csv"
    t.write_text("before,after\n1,2\n")
    with pytest.raises(InputError, match="lacks column.*activity"):
        read_transition_table(t)
    t.write_text("before,after,activity\n1,x,mining\n")
    with pytest.raises(InputError, match="not an integer"):
        read_transition_table(t)
    t.write_text("before,after,activity\n1,2,volcano\n")
    with pytest.raises(InputError, match="unknown activity 'volcano'"):
        read_transition_table(t)


def test_thresholds_must_ascend(write_raster):
    with pytest.raises(ValueError, match="ascending"):
        ChangeProduct(product_id="p", mode="probability", path=write_raster(blank()), thresholds=(0.9, 0.5),
                      acquired_after="2026-01-01")


@pytest.mark.skipif(not (REAL / "bad").exists(), reason="real data folder absent")
@pytest.mark.parametrize("name,error", [("corrupt.tif", NotARasterError), ("float_nan.tif", (CRSError, InputError))])
def test_real_bad_rasters_fail_clearly(name, error, class_table):
    product = ChangeProduct(product_id="x", path=REAL / "bad" / name, class_table=class_table,
                            acquired_after="2026-01-01")
    with pytest.raises(error):
        with ProductReader(product) as reader:
            list(PatchExtractor(reader).run())


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_one_value_windows_give_what_pixel_by_pixel_classification_gives(write_raster, class_table, monkeypatch,
                                                                          dtype):
    """Open sea, no-data margins, a mine filling a whole window: classified from one pixel, same answer."""
    import redline.change

    arr = blank(512, 512).astype(dtype)
    arr[:128, :128] = 255  # one window of no-data
    arr[:128, 128:256] = 254  # one window of cloud
    arr[128:256, :128] = 1  # one window entirely changed (a mine bigger than the window)
    arr[128:256, 128:140] = 1  # ... that goes on into the next one
    arr[300:310, 300:330] = 4
    path = write_raster(arr, f"uniform-{dtype}.tif", block=128)

    def extract():
        with ProductReader(ChangeProduct(product_id="u", path=path, class_table=class_table,
                                         acquired_after="2026-06-01")) as reader:
            ex = PatchExtractor(reader, target=128)
            patches = sorted((p.geometry.wkb, p.activity, p.pixels) for b in ex.run() for p in b)
            return patches, ex.footprint(), ex.observed_pixels, ex.windows_with_change

    fast = extract()
    monkeypatch.setattr(redline.change, "_uniform", lambda a: False)
    slow = extract()
    assert fast[0] == slow[0] and len(fast[0]) == 2
    assert fast[1].equals(slow[1]) and fast[2:] == slow[2:] == (512 * 512 - 2 * 128 * 128, 3)
