"""The engine on real rasters (../shared/data/real), checked against scipy's labelling.

Skipped where that folder is absent. The expected patch sets come from labelling
the whole raster at once with scipy.ndimage (4-connectivity) — an independent
route that knows nothing of windows or seams.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from scipy import ndimage

from redline.change import ChangeProduct, ProductReader
from redline.layers import LoadReport, Zone
from redline.patches import PatchExtractor
from redline.scan import scan_product

from .conftest import REAL
from .georef import projected_geodesic_ha

pytestmark = [pytest.mark.realdata, pytest.mark.skipif(not REAL.exists(), reason="no ../shared/data/real")]

PRODES = REAL / "prodes" / "PRODES_LANDSAT_AMZ_2000-08-01_2020-07-31_class_v20220606.tif"
S2 = REAL / "prodes" / "SENTINEL2_MSI_20LNR_2020-06-04_2021-08-26_class_v1.tif"
WC = REAL / "worldcover"


def expected_components(changed: np.ndarray, min_pixels: int) -> list[int]:
    lab, _ = ndimage.label(changed)
    sizes = np.bincount(lab.ravel())[1:]
    return sorted(sizes[sizes >= min_pixels].tolist())


def extract(product, target):
    with ProductReader(product) as reader:
        ex = PatchExtractor(reader, mmu_ha=0.1, target=target)
        return [p for b in ex.run() for p in b], ex


def covering_redline(store, path):
    with rasterio.open(path) as ds:
        box = shapely.box(*transform_bounds(ds.crs, "EPSG:4326", *ds.bounds))
    zone = Zone("redline", "whole scene", "redline", box, attrs={"function_type": "test"})
    store.add_layer_version(LoadReport("redline", "test", "EPSG:4326", "-", 1, [zone]))


def test_prodes_deforestation_2021_with_clouds(tmp_path, store):
    table = tmp_path / "prodes.csv"
    table.write_text(
        "code,activity\n1,none\n11,none\n16,none\n17,none\n27,none\n29,none\n33,other\n32,no_observation\n"
    )
    product = ChangeProduct(product_id="prodes", path=PRODES, class_table=table, acquired_after="2021-07-31")
    patches, ex = extract(product, target=256)  # EPSG:4674 (lat-first CRS), windows smaller than its blocks
    arr = rasterio.open(PRODES).read(1)
    # ~30 m pixels at 8.7 S: 1 px = 0.089 ha < MMU, 2 px = 0.18 ha >= MMU
    assert sorted(p.pixels for p in patches) == expected_components(arr == 33, 2)
    assert ex.observed_pixels == arr.size - int((arr == 32).sum())
    lon, lat = shapely.union_all([p.geometry for p in patches]).centroid.coords[0]
    assert -63 < lon < -62 and -9.5 < lat < -8.5  # lon/lat, not swapped
    covering_redline(store, PRODES)
    result = scan_product(store, product)
    assert result.conflicts == len(patches) == len(store.flags())


def test_sentinel2_clearcuts(tmp_path, store):
    table = tmp_path / "s2.csv"
    table.write_text("code,activity,confidence\n1,other,high\n2,other,high\n3,other,nominal\n4,none,\n")
    product = ChangeProduct(
        product_id="s2", path=S2, class_table=table, acquired_after="2021-08-26", sensor="Sentinel-2 MSI"
    )
    patches, _ = extract(product, target=512)
    arr = rasterio.open(S2).read(1)
    # 20 m pixels: 0.04 ha, so 3 px reach the 0.1 ha MMU
    assert sorted(p.pixels for p in patches) == expected_components((arr >= 1) & (arr <= 3), 3)
    # each patch's area: its pixels times the geodesic area of one 20 m UTM pixel at its centroid (pyproj only;
    # the planar 0.04 ha is off by the UTM scale factor, ~1e-3 here)
    crs = rasterio.open(S2).crs.to_string()
    to_utm = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    for p in patches:
        x, y = to_utm.transform(*p.geometry.centroid.coords[0])
        pixel = projected_geodesic_ha(shapely.box(x - 10, y - 10, x + 10, y + 10), crs)
        assert p.area_ha == pytest.approx(p.pixels * pixel, rel=1e-4)


@pytest.mark.skipif(not WC.exists(), reason="no WorldCover pair")
def test_worldcover_pair_sao_tome(tmp_path):
    """A 4096 x 4096 crop over São Tomé of the real 2020/2021 WorldCover pair."""
    win = Window(5500, 31000, 4096, 4096)
    paths = []
    for name in ("ESA_WorldCover_10m_2020_v100_N00E006_Map.tif", "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"):
        with rasterio.open(WC / name) as src:
            data = src.read(1, window=win)
            profile = {**src.profile, "width": 4096, "height": 4096, "transform": src.window_transform(win)}
        out = tmp_path / name
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(data, 1)
        paths.append((out, data))
    table = tmp_path / "wc.csv"
    table.write_text(
        "before,after,activity\n10|20|30|90|95|100,50,construction\n10|20|30|90|95,40,farmland\n"
        "10|20|30|90|95,60,mining\n"
    )
    product = ChangeProduct(
        product_id="wc",
        mode="transition",
        path=paths[1][0],
        before_path=paths[0][0],
        transition_table=table,
        acquired_after="2021-12-31",
    )
    patches, ex = extract(product, target=1024)
    (_, before), (_, after) = paths
    veg = np.isin(before, [10, 20, 30, 90, 95])
    expected = []
    # ~9.26 m pixels near the equator: 85.8 m2, so 12 px reach the MMU and 11 do not
    for mask in (
        (np.isin(before, [10, 20, 30, 90, 95, 100])) & (after == 50),
        veg & (after == 40),
        veg & (after == 60),
    ):
        expected += expected_components(mask, 12)
    assert sorted(p.pixels for p in patches) == sorted(expected)
    assert len(patches) > 10 and ex.windows_with_change > 0
