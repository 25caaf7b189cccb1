"""End to end on the sample scenario: exactly the planted conflicts come out.

Areas: a patch's expected area is its planted pixel count times the geodesic area of
one of its pixels (a UTM pixel square at the patch's centroid, measured by pyproj's
``Geod`` directly, not by ``redline.geo``). Over a patch the pixel area varies by
< 1e-6, and flags round areas to 0.0001 ha: the tolerance is 1e-5 relative or 1e-4 ha.
The planar UTM area (what the generator reports) is off by the scale factor, ~1e-3 here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import shapely
from pyproj import Transformer
from typer.testing import CliRunner

from redline.cli import app
from redline.store import FlagFilter, open_store

from .conftest import BACKENDS, backend_url
from .georef import projected_geodesic_ha
from .scenario import generator

ROOT = Path(__file__).resolve().parents[1]
AREA_REL, AREA_ABS = 1e-5, 1e-4  # and 1e-4 ha: flags round to 0.0001 ha
UTM = "EPSG:32649"  # the grid of every sample product
TO_UTM = Transformer.from_crs("EPSG:4490", UTM, always_xy=True)


def geodesic_area_ha(footprint: dict, pixel_size: float) -> float:
    """Pixels x the geodesic area of one pixel at the footprint's centroid (pyproj only)."""
    x, y = TO_UTM.transform(*footprint["centroid_lonlat"])
    half = pixel_size / 2
    return footprint["pixels"] * projected_geodesic_ha(shapely.box(x - half, y - half, x + half, y + half), UTM)


@pytest.fixture(scope="module", params=BACKENDS)
def scenario(request, tmp_path_factory):
    """Generate the sample data, load the layers and scan every product through the CLI."""
    out = tmp_path_factory.mktemp("sample")
    truth = generator().generate(out)
    url = backend_url(request, request.param, out)
    runner = CliRunner()

    def cli(*args):
        result = runner.invoke(app, ["--db", url, *map(str, args)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    mapping = ROOT / "sample_data" / "mapping.toml"
    for kind, name in (
        ("redline", "redline.gpkg"),
        ("reserve", "reserve.gpkg"),
        ("permit", "permits.zip"),
        ("admin", "admin.kml"),
    ):
        cli("layers", "load", kind, out / name, "--mapping", mapping)
    scans = json.loads(
        cli("scan", out / "change_2026-06.tif", out / "change_2026-09.tif", out / "landcover_pair.json", "--json")
    )
    rescans = json.loads(cli("scan", out / "change_2026-06.tif", out / "landcover_pair.json", "--json"))
    store = open_store(url)
    yield {"truth": truth, "store": store, "scans": scans, "rescans": rescans, "cli": cli, "out": out}
    store.close()


def _planted_flags(scenario):
    """Map each planted patch to the flags of its activity within ~100 m of its centroid
    (a bent road's centroid may lie just off the road; planted patches are km apart)."""
    store = scenario["store"]
    flags = store.flags()
    found = {}
    for p in scenario["truth"]["patches"]:
        point = shapely.Point(p["centroid_lonlat"])
        hits = [f for f in flags if f["activity"] == p["activity"] and f["geometry"].distance(point) < 1e-3]
        found[p["name"]] = hits
    return flags, found


def test_exactly_the_planted_conflicts(scenario):
    flags, found = _planted_flags(scenario)
    expected = [p for p in scenario["truth"]["patches"] if p["status"] is not None]
    assert len(flags) == len(expected)  # nothing from the noise, nothing outside zones
    for p in scenario["truth"]["patches"]:
        hits = found[p["name"]]
        if p["status"] is None:
            assert hits == [], f"{p['name']} must not be flagged"
            continue
        assert len(hits) == 1, f"{p['name']}: expected one flag, got {len(hits)}"
        f = hits[0]
        assert (f["status"], f["severity"], f["activity"]) == (p["status"], p["severity"], p["activity"]), p["name"]
        assert f["zone_layer"] == p["layer"]
        if p["layer"] == "redline":
            assert f["zone_name"] == p["zones"][0]
        else:
            assert f["zone_regime"] == p["zones"][0]
        assert f["n_observations"] == p["observations"]
        assert f["admin_code"] == p["township_code"]
        last = p["footprints"][-1]
        assert f["area_ha"] == pytest.approx(geodesic_area_ha(last, p["pixel_size_m"]), rel=AREA_REL, abs=AREA_ABS), p[
            "name"
        ]
        assert f["area_mu"] == pytest.approx(f["area_ha"] * 15, rel=1e-3)
        assert f["layer_versions"] == {"redline": 1, "reserve": 1, "permit": 1, "admin": 1}


def test_conflict_overlap_areas_and_rules(scenario):
    store = scenario["store"]
    _, found = _planted_flags(scenario)
    for p in scenario["truth"]["patches"]:
        if p["status"] is None:
            continue
        (f,) = found[p["name"]]
        conflicts = store.conflicts(f["id"])
        assert len(conflicts) == 1  # every planted patch lies in exactly one zone, with margin
        c = conflicts[0]
        assert c["overlap_ha"] == pytest.approx(f["area_ha"], rel=1e-6)  # wholly inside
        assert c["severity"] == p["severity"] and c["rule"]


def test_road_across_block_seams_is_one_flag(scenario):
    assert scenario["truth"]["road_seams_crossed"]  # the generator really planted it across a seam
    _, found = _planted_flags(scenario)
    (road,) = found["road_seam"]
    assert road["geometry"].geom_type == "Polygon"


def test_persistent_patch_is_one_flag_with_two_observations(scenario):
    store = scenario["store"]
    _, found = _planted_flags(scenario)
    (f,) = found["construction_persistent"]
    obs = store.observations(f["id"])
    assert [o["product_id"] for o in obs] == ["HJ-CHG-2026-06", "HJ-CHG-2026-09"]
    assert (f["first_seen"], f["last_seen"]) == ("2026-06-20", "2026-09-18")
    truth = next(p for p in scenario["truth"]["patches"] if p["name"] == "construction_persistent")
    planted = [geodesic_area_ha(fp, truth["pixel_size_m"]) for fp in truth["footprints"]]
    assert [o["area_ha"] for o in obs] == pytest.approx(planted, rel=AREA_REL, abs=AREA_ABS)
    assert planted[1] > planted[0]  # it grew
    assert [h["action"] for h in store.history(f["id"])] == ["created", "observed"]


def test_permitted_solar_farm_is_not_a_conflict(scenario):
    store = scenario["store"]
    _, found = _planted_flags(scenario)
    (solar,) = found["solar_permitted"]
    assert solar["status"] == "permitted" and solar["permit_id"] is not None
    (industrial,) = found["industrial_expired_permit"]
    assert industrial["status"] == "new" and industrial["permit_id"] is None  # its permit expired
    assert store.count_flags(FlagFilter(status=["new"])) == len(store.flags()) - 1


def test_rescan_changes_nothing(scenario):
    assert all(r["skipped"] for r in scenario["rescans"])
    assert not any(r["skipped"] for r in scenario["scans"])
    store = scenario["store"]
    assert sum(len(store.observations(f["id"])) for f in store.flags()) == 9


def test_scans_record_provenance_and_unobserved_area(scenario):
    store = scenario["store"]
    scans = store.scans()
    assert [s["product_id"] for s in scans] == ["HJ-CHG-2026-06", "HJ-LC-2025-2026", "HJ-CHG-2026-09"]
    a = scans[0]
    assert (a["sensor"], a["acquired_before"], a["acquired_after"]) == ("Sentinel-2 MSI", "2025-08-15", "2026-06-20")
    truth = scenario["truth"]["products"]["HJ-CHG-2026-06"]
    total = 1536 * 1536
    unseen = truth["code_counts"]["254"] + truth["code_counts"]["255"]  # cloud + nodata
    expected = 1 - unseen / total
    assert a["observed_fraction"] == pytest.approx(expected, abs=1e-9)
    assert a["footprint"].is_valid and a["layer_versions"]["redline"] == 1


def test_check_reports_zones_flags_and_coverage(scenario):
    answer = json.loads(scenario["cli"]("check", ROOT / "sample_data" / "check_region.geojson", "--json"))
    s = answer["summary"]
    assert s["conflicts"] == sum(
        1 for p in scenario["truth"]["patches"] if p["status"] == "new" and _inside_region(p["centroid_lonlat"])
    )
    assert s["scans"] == 3 and s["last_observed"] == "2026-09-18"
    assert 0.9 < s["observed_fraction"] <= 1.0
    per_scan = {sc["product_id"]: sc["observed_fraction"] for sc in answer["scans"]}
    assert per_scan["HJ-CHG-2026-06"] < per_scan["HJ-CHG-2026-09"] <= 1.0  # June had a cloud over RL-02 too
    names = {z["name"] for z in answer["zones"]}
    assert "摩林河水源涵养生态保护红线" in names
    for z in answer["zones"]:
        assert z["overlap"]["mu"] == pytest.approx(z["overlap"]["ha"] * 15, rel=1e-3)


def _inside_region(lonlat):
    region = json.loads((ROOT / "sample_data" / "check_region.geojson").read_text())
    geom = shapely.geometry.shape(region["features"][0]["geometry"])
    return geom.contains(shapely.Point(lonlat))


def test_export_geopackage_round_trips(scenario, tmp_path):
    import pyogrio

    scenario["cli"]("export", tmp_path / "flags.gpkg")
    scenario["cli"]("export", tmp_path / "crit.gpkg", "--crs", "EPSG:4490", "--severity", "critical")
    gpkg = pyogrio.read_dataframe(tmp_path / "flags.gpkg", layer="flags")
    assert len(gpkg) == len(scenario["store"].flags()) and gpkg.crs.to_epsg() == 4326
    crit = pyogrio.read_dataframe(tmp_path / "crit.gpkg", layer="flags")
    assert list(crit["severity"]) == ["critical"] and crit.crs.to_epsg() == 4490
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crit.gpkg", "flags.gpkg"]  # no temp files left
