"""Exports that GIS tools read cleanly: every file is read back with the readers GIS tools
use (GDAL through pyogrio, Arrow, Python's csv, the KML XML) on both stores."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import xml.etree.ElementTree as ET
import zipfile
from datetime import date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
import pytest
import shapely
from defusedxml.ElementTree import parse as parse_xml

from redline.errors import InputError
from redline.export import (
    COLUMN_TYPES,
    FORMATS,
    SEVERITY_COLOURS,
    SHAPEFILE_NAMES,
    check_options,
    export_flags,
    flags_frame,
    placemark_name,
)
from redline.store import FLAG_FIELDS, FlagFilter, open_store

from .conftest import BACKENDS, backend_url
from .scenario import build

PERMIT_NO = "内发改能源〔2023〕1186号"  # the permit_no of the sample permit that covers flag 4
KML = "{http://www.opengis.net/kml/2.2}"
NONE = FlagFilter(severity=["nothing-matches"])


@pytest.fixture(scope="module", params=BACKENDS)
def store(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    _, url = build(out, url=backend_url(request, request.param, out))
    s = open_store(url)
    yield s
    s.close()


def write(store, tmp_path, fmt, flt=None, crs=None):
    path = tmp_path / f"flags{FORMATS[fmt][0]}"
    out = export_flags(store, path, fmt, flt, crs)
    assert out["path"] == str(path) and path.is_file()
    return path


def test_column_types_cover_every_field():
    assert list(COLUMN_TYPES) == list(FLAG_FIELDS)
    assert not any(pa.types.is_null(t) for t in COLUMN_TYPES.values())


def test_frame_is_typed_and_permit_is_the_permit_number(store):
    gdf = flags_frame(store)
    assert len(gdf) == 8
    row = gdf.set_index("id").loc[4]
    assert row["permit_id"] == PERMIT_NO  # the permit's own number, not an internal zone id
    assert gdf["permit_id"].isna().sum() == 7  # the others matched no permit
    assert isinstance(row["first_seen"], date) and not isinstance(row["first_seen"], datetime)
    assert str(gdf["created_at"].dtype) == "timestamp[ms, tz=UTC][pyarrow]"
    assert str(gdf["score"].dtype) == "double[pyarrow]"


@pytest.mark.parametrize("flt", [None, NONE], ids=["all", "empty"])
def test_parquet_types(store, tmp_path, flt):
    schema = pq.read_schema(write(store, tmp_path, "parquet", flt))
    types = {name: schema.field(name).type for name in schema.names}
    assert not [n for n, t in types.items() if pa.types.is_null(t)]
    assert types["first_seen"] == pa.date32() and types["last_seen"] == pa.date32()
    assert pa.types.is_timestamp(types["created_at"]) and types["created_at"].tz == "UTC"
    assert types["score"] == pa.float64()  # all empty, still a float
    assert pa.types.is_string(types["permit_id"]) or pa.types.is_large_string(types["permit_id"])
    table = pq.read_table(write(store, tmp_path, "parquet", flt))
    if flt is None:
        assert PERMIT_NO in table.column("permit_id").to_pylist()
        assert table.column("first_seen").to_pylist()[0] == date(2026, 6, 20)


@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "shp"])
@pytest.mark.parametrize("flt", [None, NONE], ids=["all", "empty"])
def test_ogr_field_types(store, tmp_path, fmt, flt):
    path = write(store, tmp_path, fmt, flt)
    source = f"/vsizip/{path}/flags.shp" if fmt == "shp" else path
    info = pyogrio.read_info(source, layer="flags" if fmt == "gpkg" else None)
    types = dict(zip(info["fields"], info["dtypes"], strict=True))
    names = {c: SHAPEFILE_NAMES.get(c, c) for c in FLAG_FIELDS} if fmt == "shp" else {c: c for c in FLAG_FIELDS}
    date_type = "datetime64[ms]" if fmt == "fgb" else "datetime64[D]"  # FlatGeobuf has date-times only
    assert types[names["first_seen"]] == date_type and types[names["last_seen"]] == date_type
    # dBASE has no date-time: ISO 8601 text there
    assert types[names["created_at"]] == ("object" if fmt == "shp" else "datetime64[ms]")
    assert types["score"] == "float64" and types["area_ha"] == "float64"
    assert types["permit_id"] == "object" and types["id"] == "int64"
    assert info["geometry_type"] in ("MultiPolygon", "Polygon")  # one type per layer
    if flt is None:
        gdf = pyogrio.read_dataframe(source, layer="flags" if fmt == "gpkg" else None)
        assert [v for v in gdf["permit_id"] if isinstance(v, str)] == [PERMIT_NO]
        if fmt == "shp":
            assert str(gdf[names["created_at"]][0]).endswith("Z")  # ISO 8601, UTC


def test_shapefile_names_shortened_only_when_needed(store, tmp_path):
    assert all(len(k) > 10 and len(v) <= 10 for k, v in SHAPEFILE_NAMES.items())
    path = write(store, tmp_path, "shp")
    assert zipfile.ZipFile(path).read("flags.cpg").strip() == b"UTF-8"
    fields = list(pyogrio.read_info(f"/vsizip/{path}/flags.shp")["fields"])
    assert fields == [SHAPEFILE_NAMES.get(c, c) for c in FLAG_FIELDS]
    assert "confidence" in fields and "n_obs" in fields


def test_csv_has_bom_and_centroid_lon_lat(store, tmp_path):
    path = write(store, tmp_path, "csv", crs="EPSG:4490")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 8
    assert {"WKT", "lon", "lat", *FLAG_FIELDS} <= set(rows[0])
    flags = {f["id"]: f for f in store.flags()}
    for r in rows:
        c = flags[int(r["id"])]["geometry"].centroid
        assert float(r["lon"]) == pytest.approx(c.x, abs=1e-6) and float(r["lat"]) == pytest.approx(c.y, abs=1e-6)
        assert shapely.from_wkt(r["WKT"]).intersects(flags[int(r["id"])]["geometry"])
        assert date.fromisoformat(r["first_seen"]) and datetime.fromisoformat(r["created_at"]).tzinfo
    assert any("生态保护红线" in r["zone_name"] for r in rows)
    assert PERMIT_NO in {r["permit_id"] for r in rows}


@pytest.mark.parametrize("crs", [None, "EPSG:4326", "OGC:CRS84"])
def test_geojson_is_rfc7946(store, tmp_path, crs):
    path = write(store, tmp_path, "geojson", crs=crs)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert "crs" not in doc and len(doc["features"]) == 8
    x, y = doc["features"][0]["geometry"]["coordinates"][0][0][0]
    assert 100 < x < 120 and 30 < y < 50  # lon, lat
    props = {f["properties"]["id"]: f["properties"] for f in doc["features"]}
    assert props[4]["permit_id"] == PERMIT_NO and props[1]["first_seen"] == "2026-06-20"


@pytest.mark.parametrize("crs", ["EPSG:4490", "EPSG:3857"])
def test_geojson_refuses_other_crs(store, tmp_path, crs):
    with pytest.raises(InputError, match="RFC 7946"):
        export_flags(store, tmp_path / "f.geojson", "geojson", crs=crs)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="KML"):
        check_options("kml", crs)
    check_options("gpkg", crs)  # other formats take it


def test_kml_names_and_severity_styles(store, tmp_path):
    path = write(store, tmp_path, "kml")
    doc = parse_xml(path).getroot().find(f"{KML}Document")
    styles = {s.get("id"): s for s in doc.findall(f"{KML}Style")}
    assert {f"severity-{s}" for s in SEVERITY_COLOURS} <= set(styles)
    colours = {styles[f"severity-{s}"].find(f"{KML}PolyStyle/{KML}color").text for s in SEVERITY_COLOURS}
    assert len(colours) == len(SEVERITY_COLOURS)
    flags = {f["id"]: f for f in store.flags()}
    placemarks = list(doc.iter(f"{KML}Placemark"))
    assert len(placemarks) == 8
    for pm in placemarks:
        fid = int(next(d.text for d in pm.iter(f"{KML}SimpleData") if d.get("name") == "id"))
        assert pm.findtext(f"{KML}name") == placemark_name(flags[fid])
        assert pm.findtext(f"{KML}styleUrl") == f"#severity-{flags[fid]['severity']}"
        assert pm.find(f"{KML}Style") is None  # no inline style overriding the shared one
    assert placemark_name(flags[2]) == "#2 mining · 杭锦旗梭梭林自然保护区 (core)"
    gdf = pyogrio.read_dataframe(path)  # GDAL still reads it
    assert len(gdf) == 8 and set(gdf["Name"]) == {placemark_name(f) for f in flags.values()}


def test_gpkg_carries_qgis_style(store, tmp_path):
    path = write(store, tmp_path, "gpkg")
    assert pyogrio.list_layers(path)[:, 0].tolist().count("flags") == 1
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT f_table_name, f_geometry_column, styleName, useAsDefault, styleQML FROM layer_styles"
        ).fetchall()
        contents = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    assert contents == ("attributes",)
    [(table, geom_col, name, default, qml)] = rows
    assert (table, geom_col, name, default) == ("flags", "geom", "severity", 1)
    root = ET.fromstring(qml.split("\n", 1)[1])  # after the DOCTYPE line
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "severity"
    values = [c.get("value") for c in renderer.iter("category")]
    assert set(SEVERITY_COLOURS) <= set(values)
    colours = {o.get("value") for o in renderer.iter("Option") if o.get("name") == "color"}
    assert len(colours) == len(SEVERITY_COLOURS) + 1
    # the data is still read as a plain layer
    assert len(pyogrio.read_dataframe(path, layer="flags")) == 8


def test_projected_crs_export(store, tmp_path):
    path = write(store, tmp_path, "fgb", crs="EPSG:4547")  # CGCS2000 / 3-degree Gauss-Kruger CM 108E
    gdf = pyogrio.read_dataframe(path)
    assert gdf.crs.to_epsg() == 4547 and gdf.total_bounds[0] > 1000


def test_cli_refuses_crs_for_geojson(tmp_path):
    from .test_cli import assert_one_line_error, run

    proc = run("export", tmp_path / "f.geojson", "--crs", "EPSG:4490", tmp_path=tmp_path)
    assert_one_line_error(proc, "RFC 7946", "drop --crs")
    assert not (tmp_path / "f.geojson").exists()
    out = run("export", tmp_path / "f.csv", "--json", tmp_path=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["features"] == 0
    assert (tmp_path / "f.csv").read_bytes().startswith(b"\xef\xbb\xbfWKT,id,")
