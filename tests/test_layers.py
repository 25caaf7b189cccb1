"""Layer loading: any OGR format, field mapping, CRS handling, repair and versions."""

from __future__ import annotations

import zipfile

import geopandas as gpd
import pytest
import shapely

from redline.errors import CRSError, FieldMappingError, InputError
from redline.layers import read_layer

from .georef import geodesic_ha

# ~1 km x 1 km near Hangjin Banner, lon/lat
LON, LAT = 108.70, 39.85
SQUARE = shapely.box(LON, LAT, LON + 0.0117, LAT + 0.009)
BOWTIE = shapely.Polygon([(LON, LAT), (LON + 0.01, LAT + 0.01), (LON + 0.01, LAT), (LON, LAT + 0.01)])


def write(tmp_path, rows, crs="EPSG:4326", name="layer.gpkg", driver="GPKG"):
    path = tmp_path / name
    gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=crs).to_file(path, driver=driver)
    return path


def test_epsg4490_is_read_lon_lat_and_areas_are_geodesic(tmp_path):
    path = write(tmp_path, [(SQUARE, {"HXMC": "红线A", "GNLX": "防风固沙"})], crs="EPSG:4490")
    report = read_layer("redline", path, mapping={"name": "HXMC", "function_type": "GNLX"})
    (zone,) = report.zones
    assert zone.name == "红线A" and zone.attrs["function_type"] == "防风固沙"
    minx, miny, _, _ = zone.geometry.bounds
    assert minx == pytest.approx(LON, abs=1e-6) and miny == pytest.approx(LAT, abs=1e-6)  # x stays lon
    # 0.0117 deg lon x 0.009 deg lat ~ 1 km2 at 39.85 N; the reference is pyproj's Geod on the same square
    assert zone.area_ha == pytest.approx(geodesic_ha(SQUARE), rel=1e-9)
    assert 99.0 < zone.area_ha < 101.0
    assert report.source_crs == "EPSG:4490"


def test_projected_zipped_shapefile(tmp_path):
    utm = gpd.GeoSeries([SQUARE], crs=4326).to_crs(32649).iloc[0]
    folder = tmp_path / "shp"
    folder.mkdir()
    write(
        folder, [(utm, {"zone": "核心区", "name": "保护区"})], crs="EPSG:32649", name="r.shp", driver="ESRI Shapefile"
    )
    zpath = tmp_path / "reserve.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in folder.iterdir():
            z.write(f, f.name)
    (zone,) = read_layer("reserve", zpath).zones
    assert zone.regime == "core" and zone.name == "保护区"
    # through UTM and back the corners move by micrometres; the reference is pyproj's Geod
    assert zone.area_ha == pytest.approx(geodesic_ha(SQUARE), rel=1e-6)


def test_missing_required_field_is_named(tmp_path):
    path = write(tmp_path, [(SQUARE, {"HXMC": "A"})])
    with pytest.raises(FieldMappingError, match="'function_type'.*--field function_type=.*HXMC"):
        read_layer("redline", path, mapping={"name": "HXMC"})
    with pytest.raises(FieldMappingError, match="'NOPE'.*not in the layer"):
        read_layer("redline", path, mapping={"name": "NOPE"})


def test_unknown_zone_word_is_refused(tmp_path):
    path = write(tmp_path, [(SQUARE, {"zone": "外围区"})])
    with pytest.raises(FieldMappingError, match="外围区"):
        read_layer("reserve", path)


def test_layer_without_crs_is_refused(tmp_path):
    path = write(
        tmp_path, [(SQUARE, {"name": "a", "function_type": "x"})], crs=None, name="nocrs.geojson", driver="GeoJSON"
    )
    # GeoJSON without crs member is CRS84 by spec; a shapefile without .prj has none
    folder = tmp_path / "noprj"
    folder.mkdir()
    shp = write(
        folder, [(SQUARE, {"name": "a", "function_type": "x"})], crs=None, name="a.shp", driver="ESRI Shapefile"
    )
    (zone,) = read_layer("redline", path).zones  # read as CRS84
    assert zone.geometry.equals_exact(SQUARE, tolerance=1e-9)
    with pytest.raises(CRSError, match="no CRS"):
        read_layer("redline", shp)


def test_invalid_repaired_empty_dropped_and_counted(tmp_path):
    rows = [
        (SQUARE, {"name": "ok", "function_type": "x"}),
        (BOWTIE, {"name": "bowtie", "function_type": "x"}),
        (shapely.Polygon(), {"name": "empty", "function_type": "x"}),
        (shapely.LineString([(LON, LAT), (LON + 1, LAT)]), {"name": "line", "function_type": "x"}),
    ]
    report = read_layer("redline", write(tmp_path, rows))
    assert (report.repaired, report.dropped_empty, report.dropped_not_polygon) == (1, 1, 1)
    assert [z.name for z in report.zones] == ["ok", "bowtie"]
    assert all(z.geometry.is_valid for z in report.zones)


def test_vertex_limit(tmp_path):
    circle = shapely.Point(LON, LAT).buffer(0.01, quad_segs=3000)
    path = write(tmp_path, [(circle, {"name": "c", "function_type": "x"})])
    with pytest.raises(InputError, match="vertices, over the limit"):
        read_layer("redline", path, max_vertices=5000)


def test_permit_dates_are_parsed_and_checked(tmp_path):
    rows = [(SQUARE, {"name": "光伏", "valid_from": "2024-01-01", "valid_to": "2030-12-31", "activity": "solar"})]
    (permit,) = read_layer("permit", write(tmp_path, rows)).zones
    assert str(permit.valid_to) == "2030-12-31" and permit.activity == "energy"
    rows = [(SQUARE, {"name": "x", "valid_from": "soon", "valid_to": "2030-12-31"})]
    with pytest.raises(FieldMappingError, match="valid_from 'soon' is not a date"):
        read_layer("permit", write(tmp_path, rows, name="bad.gpkg"))


def test_every_load_is_a_new_version(tmp_path, store):
    path = write(tmp_path, [(SQUARE, {"name": "a", "function_type": "x"})])
    assert store.add_layer_version(read_layer("redline", path))["version"] == 1
    assert store.add_layer_version(read_layer("redline", path))["version"] == 2
    (current,) = store.layer_versions("redline")
    assert current["version"] == 2 and len(store.layer_versions(current_only=False)) == 2
    assert len(store.zones(("redline",))) == 1  # only the current version's zones
