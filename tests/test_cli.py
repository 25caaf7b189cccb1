"""The ``redline`` command through its real entry point: one clear line, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import shapely

from .conftest import blank, pixel_box
from .georef import projected_geodesic_ha

REDLINE = [str(Path(sys.executable).with_name("redline"))]


def run(*args, db=None, tmp_path=None):
    env = {**os.environ, "REDLINE_DATABASE_URL": db or f"sqlite:///{tmp_path / 'cli.db'}"}
    return subprocess.run([*REDLINE, *map(str, args)], capture_output=True, text=True, env=env, timeout=120)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    text = " ".join(lines)
    assert text.startswith("error:"), proc.stderr
    for f in fragments:
        assert f in text, proc.stderr


def test_user_mistakes_are_one_line(tmp_path, write_raster, class_table, load_zones):
    assert_one_line_error(run("scan", tmp_path / "missing.tif", tmp_path=tmp_path), "missing.tif", "no such file")
    notraster = tmp_path / "notes.tif"
    notraster.write_text("hello")
    assert_one_line_error(
        run("scan", notraster, "--classes", class_table, "--acquired-after", "2026-01-01", tmp_path=tmp_path),
        "not a readable raster",
    )
    nocrs = write_raster(blank(), "nocrs.tif", crs=None)
    assert_one_line_error(
        run("scan", nocrs, "--classes", class_table, "--acquired-after", "2026-01-01", tmp_path=tmp_path), "no CRS"
    )
    assert_one_line_error(run("layers", "load", "roads", class_table, tmp_path=tmp_path), "unknown layer kind")
    assert_one_line_error(run("check", tmp_path / "nowhere.geojson", tmp_path=tmp_path), "no such file")


def test_error_line_prints_a_name_as_given(tmp_path):
    # a file name that looks like console markup is printed as it is, not styled away
    name = tmp_path / "[bold]site[/bold].tif"
    assert_one_line_error(run("scan", name, tmp_path=tmp_path), f"{name}: no such file")


def test_unknown_codes_and_no_overlap(tmp_path, write_raster, class_table):
    import geopandas as gpd

    # a red line over the raster: the scan reaches the pixels and names the code its table lacks
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    gpd.GeoDataFrame(
        {"name": ["RL"], "function_type": ["x"]}, geometry=[pixel_box(0, 0, 700, 600)], crs="EPSG:32649"
    ).to_file(tmp_path / "rl.gpkg")
    assert run("layers", "load", "redline", tmp_path / "rl.gpkg", db=db).returncode == 0
    arr = blank()
    arr[1, 1] = 99
    arr[300:310, 300:330] = 77
    path = write_raster(arr)
    assert_one_line_error(
        run("scan", path, "--classes", class_table, "--acquired-after", "2026-01-01", db=db),
        "class code(s) 77, 99 are not in",
        "classes.csv",
    )
    assert json.loads(run("flags", "list", "--json", db=db).stdout) == []  # nothing recorded

    # a red line far away: the same raster (clean) does not overlap it
    far_db = f"sqlite:///{tmp_path / 'far.db'}"
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "far", "function_type": "x"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[100, 30], [100.1, 30], [100.1, 30.1], [100, 30]]],
                        },
                    }
                ],
            }
        )
    )
    assert run("layers", "load", "redline", far, db=far_db).returncode == 0
    clean = write_raster(blank(), "clean.tif")
    assert_one_line_error(
        run("scan", clean, "--classes", class_table, "--acquired-after", "2026-01-01", db=far_db), "does not overlap"
    )


def test_full_cycle_json(tmp_path, write_raster, class_table):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    import geopandas as gpd

    gpd.GeoDataFrame(
        {"HXMC": ["RL"], "GNLX": ["水源涵养"]}, geometry=[pixel_box(0, 0, 700, 600)], crs="EPSG:32649"
    ).to_crs(4490).to_file(tmp_path / "rl.gpkg")
    out = run(
        "layers",
        "load",
        "redline",
        tmp_path / "rl.gpkg",
        "-f",
        "name=HXMC",
        "-f",
        "function_type=GNLX",
        "--json",
        db=db,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["zones_loaded"] == 1
    arr = blank()
    arr[10:50, 10:50] = 1
    arr[300, 300] = 2  # noise
    path = write_raster(arr)
    out = run(
        "scan", path, "--classes", class_table, "--acquired-after", "2026-06-01", "--sensor", "GF-6", "--json", db=db
    )
    assert out.returncode == 0, out.stderr
    (res,) = json.loads(out.stdout)
    assert (res["patches"], res["conflicts"], len(res["new_flags"])) == (1, 1, 1)
    flags = json.loads(run("flags", "list", "--severity", "high", "--json", db=db).stdout)
    assert [(f["activity"], f["zone_name"]) for f in flags] == [("mining", "RL")]
    shown = json.loads(run("flags", "show", str(flags[0]["id"]), "--json", db=db).stdout)
    assert shown["observations"][0]["sensor"] == "GF-6" and shown["conflicts"][0]["severity"] == "high"
    assert_one_line_error(run("flags", "show", "999", db=db), "flag 999 does not exist")
    assert_one_line_error(run("flags", "list", "--severity", "huge", db=db), "--severity 'huge'")
    out = run("export", tmp_path / "f.fgb", "--json", db=db)
    assert json.loads(out.stdout)["features"] == 1
    assert_one_line_error(run("export", tmp_path / "f.xlsx", db=db), "unknown export format")
    # human output, piped: readable summary line
    out = run("scan", path, "--classes", class_table, "--acquired-after", "2026-06-01", db=db)
    assert "already scanned" in out.stdout


def test_check_region_in_wrong_crs(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    region = tmp_path / "region.geojson"
    # UTM metres written into a GeoJSON (which GDAL reads as lon/lat): the classic wrong-CRS mistake
    region.write_text(
        json.dumps(
            {
                "type": "Polygon",
                "coordinates": [[[440000, 4410000], [441000, 4410000], [441000, 4411000], [440000, 4410000]]],
            }
        )
    )
    assert_one_line_error(run("check", region, db=db), "not longitude/latitude", "--crs")
    out = run("check", region, "--crs", "EPSG:32649", "--json", db=db)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    triangle = shapely.Polygon([(440000, 4410000), (441000, 4410000), (441000, 4411000)])  # 50 ha planar
    assert answer["summary"]["region"]["ha"] == pytest.approx(projected_geodesic_ha(triangle, "EPSG:32649"), rel=1e-5)
    assert answer["summary"]["observed_fraction"] == 0.0 and answer["summary"]["last_observed"] is None


def test_bad_configuration_is_one_line(tmp_path):
    proc = run("flags", "list", db="mysql://x")
    assert_one_line_error(proc, "database URL")


def test_scan_on_a_local_dask_cluster_gives_the_serial_flags(tmp_path, write_raster, class_table):
    """``redline scan --workers 2``: a product three window rows tall, split into strips whose
    seams a road and two lots cross, ends as the same flags as the serial scan."""
    import geopandas as gpd

    gpd.GeoDataFrame(
        {"HXMC": ["RL"], "GNLX": ["水源涵养"]}, geometry=[pixel_box(0, 0, 400, 2400)], crs="EPSG:32649"
    ).to_file(tmp_path / "rl.gpkg")
    arr = blank(2400, 400)
    arr[:, 200:203] = 4  # a road through every window row
    arr[1000:1050, 20:90] = 1  # lots across the seams at rows 1024 and 2048
    arr[2030:2070, 300:380] = 5
    path = write_raster(arr, "tall.tif")
    flags = {}
    for name, extra in (("serial", []), ("dask", ["--workers", "2"])):
        db = f"sqlite:///{tmp_path / name}.db"
        assert (
            run(
                "layers", "load", "redline", tmp_path / "rl.gpkg", "-f", "name=HXMC", "-f", "function_type=GNLX", db=db
            ).returncode
            == 0
        )
        out = run("scan", path, "--classes", class_table, "--acquired-after", "2026-06-01", *extra, db=db)
        assert out.returncode == 0, out.stderr
        flags[name] = [
            {k: v for k, v in f.items() if k not in ("created_at", "updated_at")}
            for f in json.loads(run("flags", "list", "--json", db=db).stdout)
        ]
    assert flags["dask"] == flags["serial"]
    assert sorted(f["activity"] for f in flags["serial"]) == ["construction", "mining", "transport"]
