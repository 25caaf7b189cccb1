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

from .conftest import UTM49, blank, pixel_box
from .georef import projected_geodesic_ha, to_lonlat


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
    # the reference: the same UTM square, taken to lon/lat and measured by pyproj's Geod directly
    expected = projected_geodesic_ha(pixel_box(10, 10, 60, 60), UTM49)
    assert patch.area_ha == pytest.approx(expected, rel=1e-7)
    # UTM scale factor k at lon ~108.3 (60 km west of 111 E): planar = geodesic * k^2, k < 1
    assert abs(patch.area_ha - 25.0) > 1e-3
    # and it is the square, in lon/lat (within 10 cm; a pixel is 10 m)
    assert shapely.hausdorff_distance(patch.geometry, to_lonlat(pixel_box(10, 10, 60, 60), UTM49, 10.0)) < 1e-6


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
        "nominal",
        "highest",
    ]


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    bh=st.sampled_from([1, 7, 16, 32]),
    bw=st.sampled_from([7, 16, 32, 90]),
    target=st.integers(1, 64),
)
def test_window_grid_tiles_the_raster_exactly(h, w, bh, bw, target):
    rows, cols = window_grid(h, w, (bh, bw), target)
    cover = np.zeros((h, w), dtype=int)
    for r, rh in rows:
        for c, cw in cols:
            cover[r : r + rh, c : c + cw] += 1
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
    # the reference: scipy's 4-connected labelling of each class on its own
    activity = {1: "mining", 2: "industrial", 3: "energy"}
    whole = sorted(
        (activity[k], int(size)) for k in (1, 2, 3) for size in np.bincount(ndimage.label(arr == k)[0].ravel())[1:]
    )
    assert sorted((p.activity, p.pixels) for p in patches) == whole
    # area conservation: the patches' area is the changed pixels' geodesic area (pyproj Geod, one pixel
    # at the grid's centre; over 80 px of UTM the pixel area varies by < 1e-6)
    h, w = arr.shape
    px_ha = projected_geodesic_ha(pixel_box(w // 2, h // 2, w // 2 + 1, h // 2 + 1), UTM49)
    assert sum(p.area_ha for p in patches) == pytest.approx(px_ha * int((arr > 0).sum()), rel=1e-5)
    union = shapely.union_all([p.geometry for p in patches]) if patches else None
    if union is not None:
        assert union.area == pytest.approx(sum(p.geometry.area for p in patches), rel=1e-6)  # no overlaps


@settings(max_examples=40, deadline=None)
@given(arr=class_arrays())
def test_label_by_activity_matches_per_class_labelling(arr):
    """The same components as labelling each class on its own (scipy, 4-connectivity): each label is
    one class, and every per-class component is exactly one label."""
    lab, n = label_by_activity(arr)
    assert lab.dtype == np.int32 and set(np.unique(lab)) == set(range(n + 1))
    assert ((lab > 0) == (arr > 0)).all()
    expected = set()
    for k in np.unique(arr[arr > 0]):
        ref, _ = ndimage.label(arr == k)
        expected |= {frozenset(np.flatnonzero(ref == v).tolist()) for v in range(1, ref.max() + 1)}
    got = {frozenset(np.flatnonzero(lab == v).tolist()) for v in range(1, n + 1)}
    assert got == expected and n == len(expected)


def test_label_by_activity_splits_touching_classes():
    arr = np.array([[1, 1, 2], [0, 2, 2], [1, 0, 0]], dtype=np.uint8)
    lab, n = label_by_activity(arr)
    assert n == 3
    assert len({lab[0, 0], lab[0, 1]}) == 1 and len({lab[0, 2], lab[1, 1], lab[1, 2]}) == 1
    assert len({lab[0, 0], lab[0, 2], lab[2, 0]}) == 3


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 90),
    w=st.integers(1, 90),
    tile=st.sampled_from([4, 8, 16]),
    seed=st.integers(0, 2**31 - 1),
    fill=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
)
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


# --- minimum mapping unit, seams and merged pieces, on synthetic rasters ---------------


def test_patch_just_under_the_mmu_is_dropped_and_just_over_is_kept(write_raster, class_table):
    """The MMU is an area on the ellipsoid: the reference is pyproj's Geod on the same pixels."""
    arr = blank(64, 64)
    arr[10:12, 10:15] = 1  # 10 px
    path = write_raster(arr, "mmu.tif")
    area = projected_geodesic_ha(pixel_box(10, 10, 15, 12), UTM49)
    assert 0.1 < area < 0.1001  # 10 px of ~100.07 m2 (UTM scale factor < 1 here)
    kept, _ = extract(path, class_table, mmu_ha=area * (1 - 1e-6))
    assert [p.pixels for p in kept] == [10] and kept[0].area_ha == pytest.approx(area, rel=1e-7)
    dropped, _ = extract(path, class_table, mmu_ha=area * (1 + 1e-6))
    assert dropped == []
    exact, _ = extract(path, class_table, mmu_ha=kept[0].area_ha)  # an area equal to the MMU passes it
    assert [p.pixels for p in exact] == [10]


def test_nine_pixels_are_under_the_default_mmu_and_ten_are_not(write_raster, class_table):
    """9 px (0.09 ha) pass the pixel pre-filter, which allows for the largest pixel, but not the MMU."""
    arr = blank(64, 64)
    arr[10:13, 10:13] = 1  # 9 px
    arr[30:32, 30:35] = 2  # 10 px
    patches, ex = extract(write_raster(arr), class_table, mmu_ha=0.1)
    assert ex._min_pixels == 9
    assert [(p.activity, p.pixels) for p in patches] == [("industrial", 10)]


def test_seam_pieces_each_under_the_pre_filter_are_kept_when_they_add_up(write_raster, class_table):
    """Pieces on either side of a window seam (and at a four-window corner) are each fewer pixels
    than the pre-filter's minimum, but the patch they make passes the MMU: it must come out whole."""
    arr = blank(512, 512)
    arr[100:103, 254:258] = 5  # 12 px: 6 left and 6 right of column seam 256
    arr[254:258, 126:129] = 1  # 12 px: 6 above and 6 below row seam 256
    arr[254:258, 254:258] = 2  # 16 px: 2x2 in each of the four windows meeting at (256, 256)
    patches, ex = extract(write_raster(arr, "seams.tif", block=256), class_table, target=256)
    assert ex._min_pixels == 9
    got = sorted((p.activity, p.pixels) for p in patches)
    assert got == [("construction", 12), ("industrial", 16), ("mining", 12)]
    assert all(p.geometry.geom_type == "Polygon" for p in patches)
    # and each piece alone is dropped: the same shapes away from any seam
    lone = blank(512, 512)
    lone[100:103, 10:12] = 5
    lone[10:13, 126:128] = 1
    lone[20:22, 20:22] = 2
    assert extract(write_raster(lone, "lone.tif", block=256), class_table, target=256)[0] == []


def test_noise_under_the_mmu_is_never_vectorised(write_raster, class_table, monkeypatch):
    """The pre-filter: components too small to pass the MMU are dropped before vectorising."""
    import redline.patches as patches_module

    arr = blank(256, 256)
    rng = np.random.default_rng(7)
    for r, c in rng.integers(2, 250, (300, 2)):
        arr[r, c] = 6  # single-pixel speckle
    arr[100:140, 100:140] = 1
    vectorised = []
    real = patches_module._polygons

    def spy(lab, idx, labc, kept, n, c0, r0):
        vectorised.append(len(kept))
        return real(lab, idx, labc, kept, n, c0, r0)

    monkeypatch.setattr(patches_module, "_polygons", spy)
    patches, _ = extract(write_raster(arr, "speckle.tif", block=256), class_table, target=256)
    assert [(p.activity, p.pixels) for p in patches] == [("mining", 1600)]
    assert vectorised == [1]


def probability_patches(write_raster, arr, **kw):
    path = write_raster(arr, "prob.tif", nodata=None, block=256)
    product = ChangeProduct(
        product_id="p", mode="probability", path=path, activity="mining", acquired_after="2026-06-01", **kw
    )
    with ProductReader(product) as reader:
        ex = PatchExtractor(reader, mmu_ha=0.1, target=256)
        return [p for batch in ex.run() for p in batch]


def test_merged_patch_score_and_confidence_combine_all_its_pieces(write_raster):
    """A patch across a column seam and a row seam: 3 pieces with different probabilities.
    Its score is the mean over all its pixels, its confidence the level most of them reach."""
    arr = np.zeros((512, 512), dtype=np.float32)
    arr[240:256, 240:256] = 0.95  # 256 px, top-left window (the first piece met)
    arr[240:256, 256:272] = 0.6  # 256 px, top-right window
    arr[256:272, 240:256] = 0.75  # 256 px, bottom-left window
    (patch,) = probability_patches(write_raster, arr)
    assert patch.pixels == 768
    assert patch.score == pytest.approx((0.95 + 0.6 + 0.75) / 3, abs=1e-6)
    # levels 0.5/0.7/0.9: highest 256 px, high or better 512 px, nominal or better 768: the median is high
    assert patch.confidence == "high"


def test_merged_patch_score_is_weighted_by_pixels(write_raster):
    arr = np.zeros((512, 512), dtype=np.float32)
    arr[100:110, 250:256] = 0.9  # 60 px left of seam 256
    arr[100:110, 256:280] = 0.6  # 240 px right of it
    (patch,) = probability_patches(write_raster, arr)
    assert patch.pixels == 300
    assert patch.score == pytest.approx((60 * 0.9 + 240 * 0.6) / 300, abs=1e-6)
    assert patch.confidence == "nominal"


def test_confidence_reached_by_exactly_half_of_the_pixels_counts(write_raster, tmp_path):
    table = tmp_path / "c.csv"
    table.write_text("code,activity,confidence\n0,none,\n1,mining,nominal\n2,mining,highest\n3,mining,high\n")
    arr = blank(64, 64)
    arr[10:20, 10:20] = 1
    arr[10:20, 20:30] = 2  # half 'highest'
    arr[40:50, 10:20] = 1
    arr[40:50, 20:29] = 3  # 90 'high' and 10 'highest': half 'high' or better, a twentieth 'highest'
    arr[40:50, 29:30] = 2
    patches, _ = extract(write_raster(arr), table)
    assert sorted((p.pixels, p.confidence, p.score) for p in patches) == [(200, "high", None), (200, "highest", None)]


def test_a_patch_with_a_hole_measures_outer_ring_less_the_hole(write_raster, class_table):
    arr = blank(64, 64)
    arr[10:40, 10:40] = 1
    arr[20:30, 20:30] = 0  # an untouched pond inside the mine
    (patch,), _ = extract(write_raster(arr), class_table)
    expected = projected_geodesic_ha(pixel_box(10, 10, 40, 40), UTM49) - projected_geodesic_ha(
        pixel_box(20, 20, 30, 30), UTM49
    )
    assert patch.pixels == 800 and len(patch.geometry.interiors) == 1
    assert patch.area_ha == pytest.approx(expected, rel=1e-7)
