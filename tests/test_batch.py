"""Strips and the Dask scale-out: patches and flags identical to the serial run."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.change import ChangeProduct, ProductReader, resolve_product
from redline.errors import NotARasterError
from redline.patches import PatchExtractor, extract_in_strips
from redline.scan import scan_product
from redline.store import open_store

from .conftest import blank, pixel_box


def product_for(path, table):
    return ChangeProduct(product_id="t", path=path, class_table=table, acquired_after="2026-06-01")


def serial(reader, **kw):
    ex = PatchExtractor(reader, **kw)
    return [p for batch in ex.run() for p in batch], ex


def wkbs(patches):
    return sorted(p.geometry.wkb for p in patches)


@st.composite
def change_arrays(draw):
    h, w = draw(st.integers(20, 120)), draw(st.integers(20, 120))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    density = draw(st.floats(0.02, 0.6))
    arr = np.where(rng.random((h, w)) < density, rng.integers(1, 4, (h, w)), 0).astype(np.uint8)
    if draw(st.booleans()):  # long roads crossing every strip edge
        arr[:, w // 3] = 4
        arr[h // 2, :] = 4
    return arr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arr=change_arrays(),
    block=st.sampled_from([16, 32]),
    target=st.sampled_from([16, 24, 48]),
    window_rows=st.integers(1, 4),
    mmu_ha=st.sampled_from([0.0, 0.1]),
)
def test_strips_merge_to_exactly_the_serial_patches(write_raster, class_table, arr, block, target, window_rows, mmu_ha):
    """Same patches, bit for bit (WKB), whatever the strip height; same footprint and counters."""
    path = write_raster(arr, f"s{block}_{target}.tif", block=block)
    with ProductReader(product_for(path, class_table)) as reader:
        expected, ex = serial(reader, mmu_ha=mmu_ha, target=target)
        got, whole = extract_in_strips(reader, window_rows, mmu_ha=mmu_ha, target=target)
        assert wkbs(got) == wkbs(expected)
        assert sorted((p.pixels, p.activity, p.confidence) for p in got) == sorted(
            (p.pixels, p.activity, p.confidence) for p in expected
        )
        assert (whole.observed_pixels, whole.windows_with_change) == (ex.observed_pixels, ex.windows_with_change)
        fp, fp_serial = whole.footprint(), ex.footprint()
        assert (fp is None and fp_serial is None) or fp.equals(fp_serial)


def test_strip_rows_must_be_whole_window_rows(write_raster, class_table):
    path = write_raster(blank(), block=64)
    with ProductReader(product_for(path, class_table)) as reader:
        with pytest.raises(ValueError, match="whole window rows"):
            PatchExtractor(reader, target=64, rows=(10, 128))
        assert PatchExtractor(reader, target=64).strips(3) == [(0, 192), (192, 384), (384, 576), (576, 600)]


def test_serial_run_releases_a_patch_once_the_row_below_cannot_extend_it(write_raster, class_table):
    """Pending groups all reach the seam below the current block row; memory does not grow with height."""
    arr = blank()
    arr[:, 100:103] = 4  # a road through every row seam: pending until the end, as it must be
    for r in range(60, 600, 64):
        arr[r : r + 8, 300:340] = 1  # blobs across one row seam each
    with ProductReader(product_for(write_raster(arr, block=64), class_table)) as reader:
        ex = PatchExtractor(reader, target=64)
        sizes = []
        for (r, h), _ in zip(ex.rows, ex.run()):
            groups: dict[int, list] = {}
            for g, p in ex._seams.pending.items():
                groups.setdefault(ex._seams.uf.find(g), []).append(p)
            assert all(any(p.bottom_at == r + h for p in members) for members in groups.values())
            sizes.append(len(groups))
        assert max(sizes) <= 2  # the road and at most one blob


# --- on a real Dask cluster ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.distributed")
    from redline.batch import dask_client

    with dask_client(workers=2) as c:
        yield c


def snapshot(store):
    """Everything a scan writes, minus wall-clock times."""
    flags = []
    for f in store.flags():
        g = f.pop("geometry")
        flags.append(
            {
                **{k: v for k, v in f.items() if k not in ("created_at", "updated_at")},
                "wkb": shapely.normalize(g).wkb,
                "conflicts": [{k: v for k, v in c.items() if k != "id"} for c in store.conflicts(f["id"])],
                "observations": [
                    {
                        **{k: v for k, v in o.items() if k not in ("id", "geometry")},
                        "wkb": shapely.normalize(o["geometry"]).wkb,
                    }
                    for o in store.observations(f["id"])
                ],
            }
        )
    scans = [{k: v for k, v in s.items() if k not in ("started_at", "finished_at", "footprint")} for s in store.scans()]
    return flags, scans


def test_two_worker_cluster_gives_the_serial_flags(tmp_path, client, write_raster, class_table):
    import geopandas as gpd

    from redline.batch import ParallelExtractor, extractor_factory
    from redline.layers import read_layer

    arr = blank(900, 700)
    rng = np.random.default_rng(7)
    for _ in range(60):  # blobs of all activities, many across row seams
        r, c = rng.integers(0, 860), rng.integers(0, 660)
        arr[r : r + rng.integers(4, 40), c : c + rng.integers(4, 40)] = rng.integers(1, 7)
    arr[:, 200:203] = 4  # a road through every strip
    arr[450:453, :] = 4
    arr[rng.random(arr.shape) < 0.003] = 2  # salt noise
    path = write_raster(arr, block=64)
    layers = tmp_path / "rl.gpkg"
    gpd.GeoDataFrame(
        {"name": ["RL"], "function_type": ["x"]}, geometry=[pixel_box(0, 0, 500, 900)], crs="EPSG:32649"
    ).to_file(layers)
    core = tmp_path / "core.gpkg"
    gpd.GeoDataFrame(
        {"zone": ["核心区"], "name": ["R"]}, geometry=[pixel_box(300, 300, 700, 600)], crs="EPSG:32649"
    ).to_file(core)
    product = resolve_product(path, class_table=class_table, acquired_after="2026-06-01")
    results = []
    for name, make in (("serial", None), ("dask", extractor_factory(client, window_rows=1))):
        store = open_store(f"sqlite:///{tmp_path / name}.db")
        store.add_layer_version(read_layer("redline", layers))
        store.add_layer_version(read_layer("reserve", core))
        res = scan_product(store, product, make_extractor=make)
        results.append((res, snapshot(store), store.scans()[0]["footprint"]))
        store.close()
    (a, snap_a, fp_a), (b, snap_b, fp_b) = results
    assert a.patches == b.patches > 50 and a.conflicts == b.conflicts > 20
    assert (a.windows, a.windows_with_change, a.observed_fraction) == (
        b.windows,
        b.windows_with_change,
        b.observed_fraction,
    )
    assert snap_a == snap_b  # same flag ids, fields, geometries, conflicts, observations, scan record
    assert fp_a.equals(fp_b)
    with ProductReader(product) as reader:
        assert len(ParallelExtractor(reader, client, target=64, window_rows=1).strips()) == 15  # really split


def test_an_existing_cluster_by_scheduler_address_gives_the_serial_patches(client, write_raster, class_table):
    """``--scheduler ADDRESS``: a second client on a running cluster, not a cluster of its own."""
    from redline.batch import ParallelExtractor, dask_client

    arr = blank(600, 700)
    arr[:, 300:303] = 4  # a road across every strip seam
    arr[100:140, 100:400] = 1
    with ProductReader(product_for(write_raster(arr, block=64), class_table)) as reader:
        expected, _ = serial(reader, target=64)
        with dask_client(scheduler=client.scheduler.address) as other:
            assert set(other.scheduler_info()["workers"]) == set(client.scheduler_info()["workers"])
            got = [p for batch in ParallelExtractor(reader, other, target=64, window_rows=1).run() for p in batch]
    assert wkbs(got) == wkbs(expected) and len(got) == 3  # the blob cuts the road in two


def test_an_unreachable_scheduler_is_one_clear_error():
    from redline.batch import dask_client
    from redline.errors import InputError

    with pytest.raises(InputError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        with dask_client(scheduler="tcp://127.0.0.1:9", connect_timeout="1s"):
            pass


def test_a_failing_task_raises_its_own_error(client, write_raster, class_table, tmp_path):
    from redline.batch import ParallelExtractor

    arr = np.random.default_rng(1).integers(0, 7, (600, 700)).astype(np.uint8)
    path = write_raster(arr, "trunc.tif", block=64)
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])  # tiles near the end are gone
    with ProductReader(product_for(path, class_table)) as reader:
        with pytest.raises(NotARasterError, match="corrupt or truncated") as parallel:
            for _ in ParallelExtractor(reader, client, target=64, window_rows=1).run():
                pass
        with pytest.raises(NotARasterError) as serial_error:
            serial(reader, target=64)
    assert str(parallel.value) == str(serial_error.value)  # the first bad window in raster order, as serially


@pytest.mark.parametrize("target", [64, 256])
@pytest.mark.parametrize("density", [0.01, 0.15])
def test_vectorising_a_mosaic_of_components_or_the_window_gives_the_same_polygons(
    write_raster, class_table, monkeypatch, density, target
):
    import redline.patches as patches_module

    rng = np.random.default_rng(11)
    arr = np.where(rng.random((200, 180)) < density, rng.integers(1, 4, (200, 180)), 0).astype(np.uint8)
    arr[40:90, 50:120] = 2  # a block with a hole and an island in it
    arr[60:70, 70:90] = 0
    arr[63:66, 75:80] = 3
    arr[:, 170:172] = 4  # a tall thin road among small lots: a narrow mosaic holds them best
    path = write_raster(arr, block=64)
    out = []
    for share in (1.1, 0.0):  # components packed into a mosaic; one call over each window
        monkeypatch.setattr(patches_module, "_MOSAIC_BELOW", share)
        with ProductReader(product_for(path, class_table)) as reader:
            patches, _ = serial(reader, mmu_ha=0.0, target=target)
        out.append(sorted((p.pixels, shapely.normalize(p.geometry).wkb) for p in patches))
    assert out[0] == out[1] and len(out[0]) > 5
