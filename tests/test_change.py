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
    path = write_raster(
        blank(),
        tags={"REDLINE_PRODUCT_ID": "from-tag", "REDLINE_SENSOR": "GF-1", "REDLINE_ACQUIRED_AFTER": "2026-05-01"},
    )
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
    product = ChangeProduct(
        product_id="x", path=write_raster(arr), class_table=class_table, acquired_after="2026-01-01"
    )
    with ProductReader(product) as reader, pytest.raises(UnknownClassError, match="77"):
        list(PatchExtractor(reader).run())


def test_class_raster_must_be_integer(write_raster, class_table):
    product = ChangeProduct(
        product_id="x",
        path=write_raster(blank().astype("float32"), nodata=None),
        class_table=class_table,
        acquired_after="2026-01-01",
    )
    with pytest.raises(InputError, match="uint8 or uint16 codes"):
        ProductReader(product)


@pytest.mark.parametrize("dtype,scale,values", [("float32", None, (0.55, 0.95)), ("uint8", None, (55, 95))])
def test_probability_mode_levels(write_raster, dtype, scale, values):
    arr = np.zeros((300, 300), dtype=dtype)
    arr[10:50, 10:50] = values[0]  # nominal
    arr[100:150, 100:150] = values[1]  # highest
    path = write_raster(arr, nodata=None)
    product = ChangeProduct(
        product_id="p", mode="probability", path=path, activity="solar", acquired_after="2026-01-01", scale=scale
    )
    with ProductReader(product) as reader:
        patches = sorted((p for b in PatchExtractor(reader).run() for p in b), key=lambda p: p.pixels)
    assert [(p.activity, p.confidence, p.pixels) for p in patches] == [
        ("energy", "nominal", 1600),
        ("energy", "highest", 2500),
    ]
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
    product = ChangeProduct(
        product_id="lc", mode="transition", path=a, before_path=b, transition_table=table, acquired_after="2026-01-01"
    )
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
        ChangeProduct(
            product_id="p",
            mode="probability",
            path=write_raster(blank()),
            thresholds=(0.9, 0.5),
            acquired_after="2026-01-01",
        )


@pytest.mark.skipif(not (REAL / "bad").exists(), reason="real data folder absent")
@pytest.mark.parametrize("name,error", [("corrupt.tif", NotARasterError), ("float_nan.tif", (CRSError, InputError))])
def test_real_bad_rasters_fail_clearly(name, error, class_table):
    product = ChangeProduct(
        product_id="x", path=REAL / "bad" / name, class_table=class_table, acquired_after="2026-01-01"
    )
    with pytest.raises(error):
        with ProductReader(product) as reader:
            list(PatchExtractor(reader).run())


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_one_value_windows_give_what_pixel_by_pixel_classification_gives(write_raster, class_table, monkeypatch, dtype):
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
        with ProductReader(
            ChangeProduct(product_id="u", path=path, class_table=class_table, acquired_after="2026-06-01")
        ) as reader:
            ex = PatchExtractor(reader, target=128)
            patches = sorted((p.geometry.wkb, p.activity, p.pixels) for b in ex.run() for p in b)
            return patches, ex.footprint(), ex.observed_pixels, ex.windows_with_change

    fast = extract()
    monkeypatch.setattr(redline.change, "_uniform", lambda a: False)
    slow = extract()
    assert fast[0] == slow[0] and len(fast[0]) == 2
    assert fast[1].equals(slow[1]) and fast[2:] == slow[2:] == (512 * 512 - 2 * 128 * 128, 3)


# --- manifests, tables and classification in detail --------------------------------------


def test_manifest_json_names_a_pair_relative_to_itself(write_raster, tmp_path):
    sub = tmp_path / "pair"
    sub.mkdir()
    before = write_raster(np.full((32, 32), 30, dtype=np.uint8), "pair/b.tif", nodata=0)
    after = write_raster(np.full((32, 32), 50, dtype=np.uint8), "pair/a.tif", nodata=0)
    (tmp_path / "t.csv").write_text("before,after,activity\n30,50,construction\n")
    manifest = tmp_path / "pair.json"
    manifest.write_text(
        json.dumps(
            {
                "mode": "transition",
                "before": "pair/b.tif",
                "after": str(after),
                "transition_table": "t.csv",
                "acquired_after": "2026-06-01",
                "thresholds": "0.6,0.8",
            }
        )
    )
    p = resolve_product(manifest)
    assert (p.mode, p.path, p.before_path, p.transition_table) == ("transition", after, before, tmp_path / "t.csv")
    assert p.product_id == "a" and p.thresholds == (0.6, 0.8) and p.paths == [before, after]
    assert p.provenance() == {
        "product_id": "a",
        "mode": "transition",
        "sensor": None,
        "acquired_before": None,
        "acquired_after": "2026-06-01",
        "files": [str(before), str(after)],
    }


@pytest.mark.parametrize("text,match", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object")])
def test_bad_manifest_is_an_input_error(tmp_path, text, match):
    manifest = tmp_path / "m.json"
    manifest.write_text(text)
    with pytest.raises(InputError, match=f"m.json: {match}"):
        resolve_product(manifest)


def test_a_product_names_its_missing_inputs(write_raster, tmp_path, class_table):
    path = write_raster(blank())
    with pytest.raises(MissingFileError, match=r"nope.csv: no such file \(named by .*change.tif\)"):
        resolve_product(path, class_table=tmp_path / "nope.csv", acquired_after="2026-01-01")
    with pytest.raises(InputError, match=r"change.tif: a class product needs a class table \(--classes\)"):
        resolve_product(path, acquired_after="2026-01-01")
    with pytest.raises(InputError, match="a transition product needs a before raster and a transition table"):
        resolve_product(path, mode="transition", transition_table=class_table, acquired_after="2026-01-01")
    with pytest.raises(InputError, match="mode"):
        resolve_product(path, mode="magic", acquired_after="2026-01-01")
    p = resolve_product(path, mode="probability", acquired_after="2026-01-01")  # needs no table
    assert (p.product_id, p.activity, p.thresholds, p.scale) == ("change", "other", (0.5, 0.7, 0.9), None)


def test_class_table_rules(tmp_path):
    from redline.change import ClassEntry, read_class_table

    t = tmp_path / "c.csv"
    t.write_text("\ufeffCode , Activity,Confidence\n0,none,\n1,mining,HIGH\n\n2,road,\n65535,no_observation,\n")
    assert read_class_table(t) == {
        0: ClassEntry("none", "nominal"),
        1: ClassEntry("mining", "high"),
        2: ClassEntry("transport", "nominal"),
        65535: ClassEntry("no_observation"),
    }
    for body, match in [
        ("code,activity\n1,mining\n1,road\n", r"c.csv:3: class code 1 listed twice"),
        ("code,activity\n65536,mining\n", r"c.csv:2: class code 65536 outside 0..65535"),
        ("code,activity\n-1,mining\n", "outside 0..65535"),
        ("code,activity,confidence\n1,mining,\n2,road,sure\n", r"c.csv:3: confidence 'sure' not one of nominal, high"),
        ("code,activity\n1,mining\n2,road,high\n", r"c.csv:3: 3 values, but the header names 2 columns"),
        ("code,activity\n", "class table is empty"),
        ("code,what\n1,mining\n", "lacks column.*activity; has code, what"),
        ("code,activity\n1,volcano\n", r"c.csv:2: unknown activity"),
    ]:
        t.write_text(body)
        with pytest.raises(InputError, match=match):
            read_class_table(t)
    t.write_bytes(b"code,activity\n1,\xff\xfe\n")
    with pytest.raises(InputError, match="cannot read table"):
        read_class_table(t)


def test_transition_table_wildcards_and_alternatives(tmp_path):
    from redline.change import ClassEntry

    t = tmp_path / "t.csv"
    t.write_text("before,after,activity,confidence\n10|20,50,construction,highest\n*,99,no_observation,\n")
    assert read_transition_table(t) == {
        (10, 50): ClassEntry("construction", "highest"),
        (20, 50): ClassEntry("construction", "highest"),
        (-1, 99): ClassEntry("no_observation", "nominal"),
    }
    t.write_text("before,after,activity\n")
    with pytest.raises(InputError, match="transition table is empty"):
        read_transition_table(t)


def classify(write_raster, arr, tmp_path, table, **kw):
    path = write_raster(arr, "cls.tif", **kw)
    product = ChangeProduct(product_id="c", path=path, class_table=table, acquired_after="2026-01-01")
    from rasterio.windows import Window

    with ProductReader(product) as reader:
        return reader.classify(Window(0, 0, arr.shape[1], arr.shape[0]))


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_classify_keys_levels_and_observed_ground(write_raster, tmp_path, class_table, dtype):
    from redline.vocab import ACTIVITIES

    arr = np.array([[0, 1, 4], [6, 254, 255]], dtype=dtype)
    key, level, score, valid = classify(write_raster, arr, tmp_path, class_table, nodata=255, block=None)
    k = {a: ACTIVITIES.index(a) + 1 for a in ("mining", "transport", "farmland")}
    assert key.tolist() == [[0, k["mining"], k["transport"]], [k["farmland"], 0, 0]]
    assert level.tolist() == [[0, 1, 1], [0, 0, 0]]  # high, high / nominal (none: level of the table, 0)
    assert score is None
    assert valid.tolist() == [[True, True, True], [True, False, False]]


def test_uint16_codes_above_255(write_raster, tmp_path):
    table = tmp_path / "c.csv"
    table.write_text("code,activity\n0,none\n1000,mining\n")
    arr = np.array([[0, 1000]], dtype="uint16")
    key, _, _, valid = classify(write_raster, arr, tmp_path, table, nodata=None, block=None)
    from redline.vocab import ACTIVITIES

    assert key.tolist() == [[0, 1 + ACTIVITIES.index("mining")]]
    assert valid.all()


def test_probability_classification_levels_scale_and_nodata(write_raster):
    from rasterio.windows import Window

    arr = np.array([[0.0, 0.49, 0.5, 0.69, 0.7, 0.9, 1.0, np.nan]], dtype="float32")
    path = write_raster(arr, "p.tif", nodata=float("nan"), block=None)
    p = ChangeProduct(product_id="p", mode="probability", path=path, activity="mining", acquired_after="2026-01-01")
    with ProductReader(p) as reader:
        key, level, score, valid = reader.classify(Window(0, 0, 8, 1))
    assert (key[0] > 0).tolist() == [False, False, True, True, True, True, True, False]
    assert level.tolist()[0][2:7] == [0, 0, 1, 2, 2]
    assert valid.tolist() == [[True] * 7 + [False]]
    assert score[0, :7].tolist() == pytest.approx([0.0, 0.49, 0.5, 0.69, 0.7, 0.9, 1.0], abs=1e-6)
    ints = np.array([[0, 49, 50, 90, 150, 255]], dtype="uint8")  # an integer raster: percent by default
    scaled = write_raster(ints, "s.tif", nodata=255, block=None)
    for scale, passed in (
        (None, [False, False, True, True, True, False]),
        (200.0, [False, False, False, False, True, False]),
    ):
        q = p.model_copy(update={"path": scaled, "scale": scale})
        with ProductReader(q) as reader:
            key, level, score, valid = reader.classify(Window(0, 0, 6, 1))
        assert (key[0] > 0).tolist() == passed, scale
        assert valid[0].tolist() == [True, True, True, True, True, False]
        assert score[0, 3] == pytest.approx(90 / (scale or 100), abs=1e-6)


def test_transition_classification_nodata_of_either_date(write_raster, tmp_path):
    from rasterio.windows import Window

    before = np.array([[30, 30, 0, 30, 30]], dtype="uint8")
    after = np.array([[30, 50, 50, 0, 99]], dtype="uint8")
    table = tmp_path / "t.csv"
    table.write_text("before,after,activity\n30,50,construction\n*,99,no_observation\n")
    p = ChangeProduct(
        product_id="t",
        mode="transition",
        path=write_raster(after, "a.tif", nodata=0, block=None),
        before_path=write_raster(before, "b.tif", nodata=0, block=None),
        transition_table=table,
        acquired_after="2026-01-01",
    )
    with ProductReader(p) as reader:
        key, level, score, valid = reader.classify(Window(0, 0, 5, 1))
    assert (key[0] > 0).tolist() == [False, True, False, False, False]
    assert valid[0].tolist() == [True, True, False, False, False]


def test_transition_rasters_must_be_uint8(write_raster, tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("before,after,activity\n30,50,construction\n")
    a = write_raster(np.zeros((8, 8), dtype="uint16"), "a16.tif", nodata=None)
    b = write_raster(np.zeros((8, 8), dtype="uint16"), "b16.tif", nodata=None)
    p = ChangeProduct(
        product_id="t", mode="transition", path=a, before_path=b, transition_table=table, acquired_after="2026-01-01"
    )
    with pytest.raises(InputError, match="land-cover rasters must be uint8 class codes, not uint16"):
        ProductReader(p)


def test_uniform_detects_one_value_bitwise():
    from redline.change import _uniform

    assert _uniform(np.zeros((3, 5), dtype=np.uint8))
    assert _uniform(np.full((4, 4), np.nan, dtype=np.float32))
    assert not _uniform(np.array([[0, 0, 0, 0, 0, 0, 0, 1]], dtype=np.uint8))
    assert not _uniform(np.array([[1, 0, 0]], dtype=np.uint16))
    assert not _uniform(np.zeros((0, 4), dtype=np.uint8))
    odd = np.zeros((3, 3), dtype=np.uint8)
    odd[2, 2] = 7
    assert not _uniform(odd)


@pytest.mark.parametrize(
    "row,message",
    [
        ("1,x,mining", "t.csv:3: class code 'x' is not an integer"),
        ("1,2,volcano", "t.csv:3: unknown activity 'volcano'"),
        ("1,2,mining,sure", "t.csv:3: confidence 'sure' not one of nominal, high, highest"),
        ("1|z,2,mining", "t.csv:3: class code 'z' is not an integer"),
    ],
)
def test_transition_table_errors_name_file_and_line(tmp_path, row, message):
    t = tmp_path / "t.csv"
    t.write_text(f"before,after,activity,confidence\n5,6,road,\n{row}\n")
    with pytest.raises(InputError) as info:
        read_transition_table(t)
    assert str(info.value).startswith(f"{t.parent}/{message}")


def test_provenance_carries_both_dates_and_the_sensor(write_raster, class_table):
    path = write_raster(blank())
    p = resolve_product(
        path,
        class_table=class_table,
        acquired_before="2025-06-01",
        acquired_after="2026-06-01",
        sensor="GF-6 WFV",
        product_id="P",
    )
    assert p.provenance() == {
        "product_id": "P",
        "mode": "class",
        "sensor": "GF-6 WFV",
        "acquired_before": "2025-06-01",
        "acquired_after": "2026-06-01",
        "files": [str(path)],
    }
