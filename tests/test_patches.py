"""Block-wise patch extraction: seams, activities, MMU, and arithmetic properties."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import ndimage

from redline.change import ChangeProduct, ProductReader
from redline.patches import PatchExtractor, label_by_activity, window_grid

from .conftest import blank


def extract(path, table, mmu_ha=0.1, target=256):
    product = ChangeProduct(product_id="t", path=path, class_table=table, acquired_after="2026-06-01")
    with ProductReader(product) as reader:
        ex = PatchExtractor(reader, mmu_ha=mmu_ha, target=target)
        patches = [p for batch in ex.run() for p in batch]
    return patches, ex


def test_road_across_two_seams_is_one_patch(write_raster, class_table):
    arr = blank()
    arr[100:102, 40:660] = 4  # 2 px wide, crosses column seams 256 and 512
    arr[200:560, 300:302] = 4  # crosses row seam 256 and 512 (separate road)
    patches, ex = extract(write_raster(arr), class_table)
    assert sorted(p.pixels for p in patches) == [720, 1240]
    assert all(p.geometry.geom_type == "Polygon" and p.activity == "transport" for p in patches)
    assert ex.windows_total == 9


def test_area_is_geodesic_pixel_area(write_raster, class_table):
    arr = blank()
    arr[10:60, 10:60] = 1  # 2500 px of 100 m2 on the UTM grid
    (patch,), _ = extract(write_raster(arr), class_table)
    # UTM scale factor k at lon ~108.3 (3 deg west of the 111 E meridian): planar = geodesic * k^2
    assert patch.area_ha == pytest.approx(25.0, rel=2e-3)
    assert patch.area_ha != 25.0  # geodesic, not planar


def test_adjacent_activities_are_separate_patches(write_raster, class_table):
    arr = blank()
    arr[300:400, 240:256] = 3  # energy left of the seam
    arr[300:400, 256:270] = 1  # mining right of it, touching
    patches, _ = extract(write_raster(arr), class_table)
    assert sorted((p.activity, p.pixels) for p in patches) == [("energy", 1600), ("mining", 1400)]


def test_mmu_drops_noise_but_keeps_seam_pieces_that_add_up(write_raster, class_table):
    arr = blank()
    arr[50, 50] = 1
    arr[60:62, 60:63] = 2  # 6 px = 0.06 ha < 0.1 ha
    arr[250:262, 254:258] = 5  # 48 px split 2/2 columns across a seam: each side < MMU, whole >= MMU
    patches, _ = extract(write_raster(arr), class_table)
    assert [(p.activity, p.pixels) for p in patches] == [("construction", 48)]


def test_clouds_and_nodata_are_not_change_but_recorded_as_unobserved(write_raster, class_table):
    arr = blank()
    arr[:, 600:] = 255  # nodata strip
    arr[0:200, 0:200] = 254  # cloud
    patches, ex = extract(write_raster(arr), class_table)
    assert patches == []
    expected = 1 - (600 * 100 + 200 * 200) / (600 * 700)
    assert ex.observed_pixels / ex.total_pixels == pytest.approx(expected)
    fp = ex.footprint()
    assert fp is not None and fp.is_valid


def test_confidence_is_median_level(write_raster, tmp_path):
    table = tmp_path / "c.csv"
    table.write_text("code,activity,confidence\n0,none,\n1,mining,nominal\n2,mining,highest\n")
    arr = blank()
    arr[10:20, 10:30] = 1
    arr[10:20, 30:40] = 2  # a third at 'highest': median stays nominal
    arr[100:110, 10:20] = 1
    arr[100:110, 20:40] = 2  # two thirds 'highest'
    patches, _ = extract(write_raster(arr), table)
    assert [p.confidence for p in sorted(patches, key=lambda p: p.geometry.centroid.y, reverse=True)] == [
        "nominal", "highest"]


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 90), w=st.integers(1, 90),
    bh=st.sampled_from([1, 7, 16, 32]), bw=st.sampled_from([7, 16, 32, 90]),
    target=st.integers(1, 64),
)
def test_window_grid_tiles_the_raster_exactly(h, w, bh, bw, target):
    rows, cols = window_grid(h, w, (bh, bw), target)
    cover = np.zeros((h, w), dtype=int)
    for r, rh in rows:
        for c, cw in cols:
            cover[r:r + rh, c:c + cw] += 1
            assert r % bh == 0 and (c % bw == 0 or bw >= w)
    assert (cover == 1).all()


@st.composite
def class_arrays(draw):
    h = draw(st.integers(16, 80))
    w = draw(st.integers(16, 80))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.floats(0.05, 0.6))
    arr = np.where(rng.random((h, w)) < density, rng.integers(1, 4, (h, w)), 0).astype(np.uint8)
    return arr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arr=class_arrays(), block=st.sampled_from([16, 32]), target=st.sampled_from([16, 32, 48]))
def test_windowed_patches_equal_whole_raster_components(write_raster, class_table, arr, block, target):
    """Patch count, pixel counts and total area do not depend on the window size."""
    path = write_raster(arr, f"p{block}_{target}.tif", block=block)
    patches, _ = extract(path, class_table, mmu_ha=0.0, target=target)
    lab, n = label_by_activity(arr)
    whole = sorted(np.bincount(lab.ravel())[1:].tolist())
    assert sorted(p.pixels for p in patches) == whole
    assert len(patches) == n
    # area conservation: the patches' area is the changed pixels' area
    px_area = patches[0].area_ha / patches[0].pixels if patches else 0
    assert sum(p.area_ha for p in patches) == pytest.approx(px_area * int((arr > 0).sum()), rel=1e-4)
    union = shapely.union_all([p.geometry for p in patches]) if patches else None
    if union is not None:
        assert union.area == pytest.approx(sum(p.geometry.area for p in patches), rel=1e-6)  # no overlaps


def test_label_by_activity_matches_per_class_labelling():
    arr = np.array([[1, 1, 2], [0, 2, 2], [1, 0, 0]], dtype=np.uint8)
    lab, n = label_by_activity(arr)
    assert n == 3
    per_class = sum(ndimage.label(arr == k)[1] for k in (1, 2))
    assert n == per_class


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 90), w=st.integers(1, 90), tile=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**31 - 1),
       fill=st.sampled_from([0.0, 0.3, 0.9, 1.0]))
def test_mask_region_is_exactly_the_true_cells(h, w, tile, seed, fill):
    """Solid tiles as boxes, mixed tiles cell by cell: the same region as polygonizing every cell."""
    from rasterio.features import shapes

    from redline.patches import mask_region

    rng = np.random.default_rng(seed)
    mask = rng.random((h, w)) < fill
    mask[: h // 2, : w // 2] = fill > 0.5  # a solid block, so whole tiles occur
    got = mask_region(mask, tile)
    cells = [shapely.geometry.shape(g) for g, _ in shapes(mask.view(np.uint8), mask=mask, connectivity=4)]
    expected = shapely.union_all(cells) if cells else shapely.Polygon()
    assert got.is_valid
    assert got.area == int(mask.sum())
    assert got.symmetric_difference(expected).area == 0
