"""Scans against the store: conflicts, persistence, idempotence, atomicity."""

from __future__ import annotations

import re

import pytest

from redline.change import resolve_product
from redline.config import Settings, get_settings
from redline.errors import InputError, NoOverlapError
from redline.scan import scan_identity, scan_product
from redline.store import FlagFilter

from .conftest import blank, pixel_box


@pytest.fixture
def zones(load_zones):
    load_zones("redline", [(pixel_box(0, 0, 350, 600), {"name": "RL-A", "function_type": "防风固沙"})])
    load_zones(
        "reserve",
        [
            (pixel_box(350, 0, 500, 300), {"zone": "核心区", "name": "R"}),
            (pixel_box(300, 300, 600, 600), {"zone": "缓冲区", "name": "R"}),
        ],
    )


def product(write_raster, class_table, arr, name="change.tif", day="2026-06-01"):
    return resolve_product(write_raster(arr, name), class_table=class_table, acquired_after=day)


def test_overlapping_zones_strictest_wins(store, zones, write_raster, class_table):
    arr = blank()
    arr[100:140, 320:360] = 1  # mining across the red line (high, 30 columns) and the core zone (critical, 10):
    #                             the strictest zone names the flag, not the largest overlap
    result = scan_product(store, product(write_raster, class_table, arr))
    (flag,) = store.flags()
    assert result.conflicts == 1 and flag["severity"] == "critical" and flag["zone_regime"] == "core"
    conflicts = store.conflicts(flag["id"])
    assert {(c["layer"], c["severity"]) for c in conflicts} == {("reserve", "critical"), ("redline", "high")}
    assert (flag["zone_layer"], flag["zone_name"], flag["rule"]) == (
        "reserve",
        "R",
        next(c["rule"] for c in conflicts if c["layer"] == "reserve"),
    )
    # parts add up (each rounded to 1 m2; zone edges are straight in lon/lat, not UTM)
    assert sum(c["overlap_ha"] for c in conflicts) == pytest.approx(flag["area_ha"], abs=1e-3)


def test_patch_outside_all_zones_is_not_a_flag(store, zones, write_raster, class_table):
    arr = blank()
    arr[10:40, 600:640] = 5
    result = scan_product(store, product(write_raster, class_table, arr))
    assert result.patches == 1 and result.conflicts == 0 and store.flags() == []


def test_same_product_twice_is_scanned_once(store, zones, write_raster, class_table):
    arr = blank()
    arr[100:140, 100:140] = 6
    p = product(write_raster, class_table, arr)
    first = scan_product(store, p)
    again = scan_product(store, p)
    assert not first.skipped and again.skipped
    assert len(store.flags()) == 1 and len(store.scans()) == 1


def test_overlapping_patch_of_a_later_scan_is_an_observation(store, zones, write_raster, class_table):
    a, b = blank(), blank()
    a[100:140, 100:140] = 6
    b[120:160, 120:170] = 6  # grown, overlapping
    b[400:420, 100:150] = 4  # new elsewhere
    scan_product(store, product(write_raster, class_table, a, "a.tif", "2026-06-01"))
    result = scan_product(store, product(write_raster, class_table, b, "b.tif", "2026-09-01"))
    assert len(result.new_flags) == 1 and len(result.observed_flags) == 1
    flag = store.flag(result.observed_flags[0])
    assert flag["n_observations"] == 2 and (flag["first_seen"], flag["last_seen"]) == ("2026-06-01", "2026-09-01")
    assert flag["area_ha"] == pytest.approx(20.0, rel=2e-3)  # geometry is the latest observation


def test_crash_mid_scan_leaves_store_as_before(store, zones, write_raster, class_table, monkeypatch):
    arr = blank()
    arr[100:140, 100:140] = 6
    arr[400:440, 100:140] = 1
    scan_product(store, product(write_raster, class_table, arr, "a.tif"))
    before = (store.flags(with_geometry=False), len(store.scans()))

    arr2 = arr.copy()
    arr2[200:240, 200:240] = 2
    import redline.scan as scan_module

    calls = {"n": 0}
    real = scan_module._record

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(scan_module, "_record", crash_on_second)
    with pytest.raises(RuntimeError):
        scan_product(store, product(write_raster, class_table, arr2, "b.tif"))
    assert (store.flags(with_geometry=False), len(store.scans())) == before
    monkeypatch.setattr(scan_module, "_record", real)
    result = scan_product(store, product(write_raster, class_table, arr2, "b.tif"))  # re-run works
    assert not result.skipped and len(result.new_flags) == 1


def test_no_layers_and_no_overlap_are_clear_errors(store, write_raster, class_table, load_zones):
    arr = blank()
    with pytest.raises(InputError, match="no red-line or reserve layer"):
        scan_product(store, product(write_raster, class_table, arr))
    far = pixel_box(0, 0, 10, 10, origin=(700000.0, 3000000.0))
    load_zones("redline", [(far, {"name": "far", "function_type": "x"})])
    with pytest.raises(NoOverlapError, match="does not overlap"):
        scan_product(store, product(write_raster, class_table, arr))


def test_flag_filters(store, zones, write_raster, class_table):
    arr = blank()
    arr[100:140, 100:140] = 6
    arr[100:140, 400:440] = 1
    scan_product(store, product(write_raster, class_table, arr))
    assert [f["activity"] for f in store.flags(FlagFilter(severity=["critical"]))] == ["mining"]
    assert store.count_flags(FlagFilter(activity=["farmland"])) == 1
    assert store.count_flags(FlagFilter(since=__import__("datetime").date(2026, 7, 1))) == 0
    first = store.flags(FlagFilter(limit=1))
    assert len(first) == 1 and len(store.flags(FlagFilter(after_id=first[0]["id"]))) == 1


@pytest.mark.parametrize("judged", ["false_positive", "permitted"])
def test_judged_flag_is_not_dispatched_again(store, zones, write_raster, class_table, judged):
    from redline.workflow import move

    a = blank()
    a[100:140, 100:140] = 6
    first = scan_product(store, product(write_raster, class_table, a, "a.tif", "2026-06-01"))
    (fid,) = first.new_flags
    move(store, fid, "dispatched", "inspector")
    move(store, fid, judged, "inspector", note="field visit")
    b = a.copy()
    b[140:150, 100:140] = 6  # the same place, slightly grown
    again = scan_product(store, product(write_raster, class_table, b, "b.tif", "2026-09-01"))
    assert again.new_flags == [] and again.observed_flags == [fid]
    flag = store.flag(fid)
    assert flag["status"] == judged and flag["n_observations"] == 2
    assert [h["action"] for h in store.history(fid)] == ["created", "status", "status", "observed"]


def test_edge_neighbours_of_different_activities_stay_separate_flags(store, zones, write_raster, class_table):
    """Reprojected pixel outlines of two touching patches overlap by slivers, not by area."""
    a = blank()
    a[100:140, 100:140] = 6
    a[100:140, 140:170] = 1  # shares an edge with the farmland patch
    a[200:230, 100:140] = 5
    a[230:260, 110:120] = 2  # shares part of an edge
    result = scan_product(store, product(write_raster, class_table, a))
    assert len(result.new_flags) == 4 and result.observed_flags == []
    assert sorted(f["activity"] for f in store.flags()) == ["construction", "farmland", "industrial", "mining"]
    assert all(f["n_observations"] == 1 for f in store.flags())


def test_an_older_product_scanned_later_adds_an_observation_but_keeps_the_latest_state(
    store, zones, write_raster, class_table
):
    new, old = blank(), blank()
    new[100:140, 100:150] = 6  # September: farmland, 2000 px
    old[100:140, 100:130] = 1  # June, scanned afterwards: mining, 1200 px, same place
    scan_product(store, product(write_raster, class_table, new, "sep.tif", "2026-09-01"))
    (before,) = store.flags()
    res = scan_product(store, product(write_raster, class_table, old, "jun.tif", "2026-06-01"))
    assert res.new_flags == [] and res.observed_flags == [before["id"]]
    (after,) = store.flags()
    assert (after["first_seen"], after["last_seen"], after["n_observations"]) == ("2026-06-01", "2026-09-01", 2)
    assert (after["activity"], after["area_ha"]) == ("farmland", before["area_ha"])  # September's state stays
    assert after["geometry"].equals(before["geometry"])
    assert sorted(o["observed_on"] for o in store.observations(after["id"])) == ["2026-06-01", "2026-09-01"]
    assert [c["severity"] for c in store.conflicts(after["id"])] == ["medium"]  # September's conflicts stay


def test_two_patches_of_one_scan_on_one_flag_add_up(store, zones, write_raster, class_table):
    first, second = blank(), blank()
    first[100:140, 100:160] = 6  # one field
    second[100:140, 100:125] = 6  # later: two parts of it, split by a track
    second[100:140, 130:160] = 6
    scan_product(store, product(write_raster, class_table, first, "a.tif", "2026-06-01"))
    res = scan_product(store, product(write_raster, class_table, second, "b.tif", "2026-09-01"))
    (flag,) = store.flags()
    assert res.new_flags == [] and res.observed_flags == [flag["id"]] and res.conflicts == 2
    obs = [o for o in store.observations(flag["id"]) if o["observed_on"] == "2026-09-01"]
    assert sorted(o["pixels"] for o in obs) == [1000, 1200]
    assert flag["n_observations"] == 3
    assert flag["area_ha"] == pytest.approx(sum(o["area_ha"] for o in obs), abs=2e-4)
    assert flag["area_mu"] == pytest.approx(flag["area_ha"] * 15, rel=1e-3)
    assert flag["geometry"].area == pytest.approx(sum(o["geometry"].area for o in obs), rel=1e-9)


def test_a_permitted_patch_is_recorded_as_permitted(store, zones, load_zones, write_raster, class_table):
    load_zones(
        "permit", [(pixel_box(95, 95, 145, 145), {"name": "P-1", "valid_from": "2026-01-01", "valid_to": "2026-12-31"})]
    )
    arr = blank()
    arr[100:140, 100:140] = 6  # wholly inside the permit
    arr[400:440, 100:140] = 6  # outside it
    res = scan_product(store, product(write_raster, class_table, arr))
    assert (res.permitted, res.conflicts, len(res.new_flags)) == (1, 1, 2)
    by_status = {f["status"]: f for f in store.flags()}
    assert set(by_status) == {"permitted", "new"}
    assert by_status["permitted"]["permit_id"] is not None and by_status["new"]["permit_id"] is None
    (created,) = store.history(by_status["permitted"]["id"])
    assert (created["action"], created["detail"]["status"]) == ("created", "permitted")


def test_the_scan_record_and_the_commit_hook(store, zones, write_raster, class_table):
    arr = blank()
    arr[100:140, 100:140] = 6
    arr[300, 300] = 1  # noise under the MMU
    p = product(write_raster, class_table, arr)
    seen = []

    def hook(s, result):
        seen.append((result.scan_id, len(s.flags())))

    res = scan_product(store, p, on_commit=hook)
    (scan,) = store.scans()
    assert seen == [(res.scan_id, 1)] and scan["id"] == res.scan_id
    assert (scan["checksum"], scan["state"], scan["product_id"]) == (scan_identity(p, get_settings()), "done", "change")
    assert scan["rules_version"] == "2026.1" and set(scan["layer_versions"]) == {"redline", "reserve"}
    assert scan["stats"] == {"patches": 1, "conflict_patches": 1, "mmu_ha": 0.1}
    assert scan["observed_fraction"] == res.observed_fraction == 1.0
    assert (res.patches, res.windows, res.windows_with_change) == (1, 1, 1)
    summary = res.summary()
    assert summary["product_id"] == "change" and summary["checksum"] == scan["checksum"] and not summary["skipped"]


def test_a_failing_commit_hook_leaves_nothing(store, zones, write_raster, class_table):
    arr = blank()
    arr[100:140, 100:140] = 6

    def hook(s, result):
        raise RuntimeError("ledger write failed")

    with pytest.raises(RuntimeError):
        scan_product(store, product(write_raster, class_table, arr), on_commit=hook)
    assert store.scans() == [] and store.flags() == []


def test_what_a_scan_writes_for_a_new_and_a_re_observed_flag(store, zones, write_raster, class_table):
    a, b = blank(), blank()
    a[100:140, 100:140] = 6
    a[400:440, 100:140] = 1
    b[110:150, 100:150] = 2  # the same place, later, now industrial
    pa = product(write_raster, class_table, a, "a.tif", "2026-06-01")
    first = scan_product(store, pa)
    assert (first.conflicts, first.permitted, len(first.new_flags)) == (2, 0, 2)
    fid = next(f["id"] for f in store.flags() if f["activity"] == "farmland")
    (created,) = store.history(fid)
    assert (created["actor"], created["action"], created["detail"]) == (
        "scan",
        "created",
        {"scan_id": first.scan_id, "product_id": "a", "status": "new"},
    )
    (obs,) = store.observations(fid)
    assert (obs["flag_id"], obs["scan_id"], obs["observed_on"], obs["activity"], obs["confidence"], obs["pixels"]) == (
        fid,
        first.scan_id,
        "2026-06-01",
        "farmland",
        "nominal",
        1600,
    )
    assert obs["area_ha"] == round(obs["area_ha"], 4) and obs["score"] is None

    from redline.workflow import move

    move(store, fid, "dispatched", "insp")  # a scan never changes the status
    pb = product(write_raster, class_table, b, "b.tif", "2026-06-01")  # the same day: the later scan wins
    second = scan_product(store, pb)
    assert second.observed_flags == [fid] and second.new_flags == []
    flag = store.flag(fid)
    assert (flag["activity"], flag["severity"], flag["status"], flag["n_observations"]) == (
        "industrial",
        "high",
        "dispatched",
        2,
    )
    new_patch = next(o for o in store.observations(fid) if o["scan_id"] == second.scan_id)
    assert flag["geometry"].equals(new_patch["geometry"])  # the flag shows the latest observation
    assert flag["area_ha"] == new_patch["area_ha"] and new_patch["pixels"] == 2000
    assert [c["severity"] for c in store.conflicts(fid)] == ["high"]
    observed = store.history(fid)[-1]
    assert (observed["actor"], observed["action"], observed["detail"]) == (
        "scan",
        "observed",
        {"scan_id": second.scan_id, "product_id": "b", "status": "dispatched"},
    )


def test_scan_reports_progress_counts_every_window_row_and_records_admin_and_footprint(
    store, zones, load_zones, write_raster, class_table
):
    load_zones("admin", [(pixel_box(0, 0, 350, 1100), {"name": "锡尼镇", "code": "150625100"})])
    arr = blank(1100, 300)
    arr[100:140, 100:140] = 6  # in the first window row
    arr[1050:1090, 100:140] = 6  # in the second (rows 1024..1100), outside the zones
    ticks = []
    res = scan_product(
        store, product(write_raster, class_table, arr, "tall.tif"), progress=lambda n, total: ticks.append((n, total))
    )
    assert ticks == [(1, 2), (1, 2)] and (res.windows, res.windows_with_change) == (2, 2)
    assert res.patches == 2 and res.conflicts == 1
    (flag,) = store.flags()
    assert (flag["admin_code"], flag["admin_name"]) == ("150625100", "锡尼镇")
    (scan,) = store.scans()
    assert scan["footprint"] is not None and scan["footprint"].contains(flag["geometry"])


def test_scan_uses_the_configured_mmu(store, zones, write_raster, class_table):
    from redline.config import Settings

    arr = blank()
    arr[100:103, 100:110] = 6  # 30 px, ~0.3 ha
    res = scan_product(store, product(write_raster, class_table, arr), settings=Settings(mmu_ha=0.5))
    assert res.patches == 0 and store.scans()[0]["stats"]["mmu_ha"] == 0.5
    arr[500, 600] = 6  # another product (one more pixel of noise)
    res = scan_product(store, product(write_raster, class_table, arr, "b.tif"), settings=Settings(mmu_ha=0.2))
    assert res.patches == 1


def test_scan_error_messages(store, write_raster, class_table, load_zones):
    arr = blank()
    with pytest.raises(InputError) as info:
        scan_product(store, product(write_raster, class_table, arr))
    assert str(info.value) == ("no red-line or reserve layer is loaded; run `redline layers load redline FILE` first")
    load_zones(
        "redline", [(pixel_box(0, 0, 10, 10, origin=(700000.0, 3000000.0)), {"name": "far", "function_type": "x"})]
    )
    with pytest.raises(NoOverlapError) as info:
        scan_product(store, product(write_raster, class_table, arr))
    assert re.fullmatch(
        r".*change\.tif: raster \(lon/lat bounds -?\d+\.\d{4}, -?\d+\.\d{4}, -?\d+\.\d{4}, "
        r"-?\d+\.\d{4}\) does not overlap any loaded red-line or reserve zone",
        str(info.value),
    )


def test_a_scan_under_another_minimum_mapping_unit_is_another_scan(store, zones, write_raster, class_table):
    """The scan identity covers the settings that change what a scan finds: the same product
    with a smaller MMU finds the small patch the first scan dropped."""
    arr = blank()
    arr[100:140, 100:140] = 6  # 16 ha
    arr[300:303, 300:303] = 6  # 9 pixels of 10 m, 0.09 ha: under the default MMU of 0.1 ha
    p = product(write_raster, class_table, arr)
    first = scan_product(store, p, settings=Settings(mmu_ha=0.1))
    again = scan_product(store, p, settings=Settings(mmu_ha=0.1))
    finer = scan_product(store, p, settings=Settings(mmu_ha=0.001))
    assert (len(first.new_flags), again.skipped, finer.skipped) == (1, True, False)
    assert finer.new_flags and len(store.flags()) == 2 and len(store.scans()) == 2
