"""Exports of flags for GIS analysts, written atomically (temp file + rename).

The file is written in a private folder next to the destination (``.redline-export-*``,
same file system, so the final rename is atomic), whose ``.lock`` is held under ``flock``
while the export runs. A killed export leaves that folder behind, never a partial file at
the destination; the next export to the same folder removes such folders once their lock
is free (their process is gone).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
import xml.etree.ElementTree as ET  # noqa: S405 - builds XML; parsing goes through defusedxml
import zipfile
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa
import pyogrio
import shapely
from defusedxml.ElementTree import parse as parse_xml

from .errors import InputError
from .faults import checkpoint
from .geo import STORAGE_CRS, parse_crs
from .model import FLAG_SPECS
from .store import FLAG_FIELDS, FlagFilter, Store

# format -> (file suffix, media type)
FORMATS = {
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "geojson": (".geojson", "application/geo+json"),
    "fgb": (".fgb", "application/flatgeobuf"),
    "parquet": (".parquet", "application/vnd.apache.parquet"),
    "csv": (".csv", "text/csv"),
    "kml": (".kml", "application/vnd.google-earth.kml+xml"),
    "shp": (".zip", "application/zip"),
}

# The type of every exported column, from the flag record (redline.model), so that each
# format gets real types whatever the rows hold (an all-empty column is never Arrow ``null``):
# dates as dates, times as UTC timestamps, JSON as text.
_ARROW_TYPES = {
    "int": pa.int32(),
    "bigint": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "json": pa.string(),
}
# permit_id: the permit's own reference (its permit_no, else its name), not the internal zone id
_EXPORTED_AS = {"permit_id": pa.string()}
COLUMN_TYPES = {f.name: _EXPORTED_AS.get(f.name, _ARROW_TYPES[f.kind]) for f in FLAG_SPECS}

# Shapefile (dBASE) field names hold at most 10 characters: only longer names are shortened.
# (dBASE has dates but no date-times: created_at / updated_at are ISO 8601 text there.)
SHAPEFILE_NAMES = {
    "n_observations": "n_obs",
    "zone_regime": "zone_regim",
    "layer_versions": "layer_vers",
    "rules_version": "rules_ver",
}

# Colours (r, g, b) by severity, ascending: the KML styles and the QGIS style use the same.
SEVERITY_COLOURS = {"low": (255, 237, 160), "medium": (254, 178, 76), "high": (240, 59, 32), "critical": (128, 0, 38)}
UNKNOWN_COLOUR = (150, 150, 150)


def _lonlat(crs) -> bool:
    """Whether ``crs`` is longitude/latitude on WGS 84 (EPSG:4326 or OGC:CRS84)."""
    return crs is None or parse_crs(crs).equals(STORAGE_CRS, ignore_axis_order=True)


def check_options(fmt: str, crs=None) -> None:
    """Refuse combinations a format cannot hold, before any work is done."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "kml" and not _lonlat(crs):
        raise InputError("KML is always longitude/latitude (EPSG:4326); drop --crs")
    if fmt == "geojson" and not _lonlat(crs):
        raise InputError(
            "GeoJSON is always longitude/latitude on WGS 84 (RFC 7946: CRS84 / EPSG:4326); "
            "drop --crs, or export another format (gpkg, fgb, parquet, shp) for that CRS"
        )


def flags_frame(store: Store, flt: FlagFilter | None = None, crs=None) -> gpd.GeoDataFrame:
    """The flags as a typed frame (see COLUMN_TYPES), in ``crs`` (default lon/lat)."""
    flags = store.flags(flt)
    refs = store.zone_refs([f["permit_id"] for f in flags if f.get("permit_id") is not None])
    records = []
    for f in flags:
        rec = {k: f.get(k) for k in FLAG_FIELDS}
        rec["layer_versions"] = json.dumps(rec["layer_versions"], ensure_ascii=False)
        rec["permit_id"] = refs.get(rec["permit_id"]) if rec["permit_id"] is not None else None
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=list(FLAG_FIELDS))
    for col, typ in COLUMN_TYPES.items():
        values = df[col]
        if pa.types.is_date(typ):
            values = pd.to_datetime(values, format="ISO8601").dt.date
        elif pa.types.is_timestamp(typ):
            values = pd.to_datetime(values, format="ISO8601", utc=True)
        arr = pa.array(list(values.astype(object).where(values.notna(), None)), type=typ)
        df[col] = pd.Series(arr, dtype=pd.ArrowDtype(typ), index=df.index)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([f["geometry"] for f in flags], crs=STORAGE_CRS), crs=STORAGE_CRS)
    if crs is not None and not parse_crs(crs).equals(STORAGE_CRS):
        gdf = gdf.to_crs(parse_crs(crs))
    return gdf


def _ogr(gdf: gpd.GeoDataFrame, path: Path, driver: str, **kwargs) -> None:
    # flags are polygons: one layer type, MultiPolygon, even for an empty export
    polygonal = bool(gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all())
    if polygonal:
        kwargs.update(promote_to_multi=True, geometry_type="MultiPolygon")
    pyogrio.write_dataframe(gdf, path, driver=driver, layer="flags", use_arrow=True, **kwargs)


def _iso_dates(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Dates and times as ISO 8601 text (``2026-06-20``, ``2026-12-01T22:26:08+00:00``), for the
    text formats (CSV, GeoJSON, KML), which have no date type (GDAL would write ``2026/06/20``)."""
    out = gdf.copy()
    for col, typ in COLUMN_TYPES.items():
        if pa.types.is_date(typ) or pa.types.is_timestamp(typ):
            out[col] = pd.array(
                [None if pd.isna(v) else v.isoformat() for v in out[col]], dtype=pd.ArrowDtype(pa.string())
            )
    return out


def _write(gdf: gpd.GeoDataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        gdf.to_parquet(path)
    elif fmt == "shp":
        folder = path.parent / (path.name + ".d")
        folder.mkdir()
        try:
            shp = gdf.rename(columns=SHAPEFILE_NAMES)
            _ogr(shp, folder / "flags.shp", "ESRI Shapefile", layer_options={"ENCODING": "UTF-8"})  # flags.cpg
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(folder.iterdir()):
                    z.write(f, f.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    elif fmt == "csv":
        # lon/lat of each flag's centroid (whatever the output CRS), the geometry as WKT,
        # UTF-8 with a BOM so that Excel reads the Chinese names right
        centroids = shapely.centroid(gdf.geometry.to_crs(STORAGE_CRS).values)
        out = _iso_dates(gdf)
        for i, (name, values) in enumerate((("lon", shapely.get_x(centroids)), ("lat", shapely.get_y(centroids)))):
            out.insert(len(FLAG_FIELDS) + i, name, pd.array(values.round(7), dtype=pd.ArrowDtype(pa.float64())))
        _ogr(out, path, "CSV", layer_options={"GEOMETRY": "AS_WKT", "WRITE_BOM": "YES"})
    elif fmt == "geojson":
        _ogr(_iso_dates(gdf), path, "GeoJSON", layer_options={"RFC7946": "YES"})  # lon/lat, no "crs" member
    elif fmt == "kml":
        _write_kml(gdf, path)
    elif fmt == "gpkg":
        _ogr(gdf, path, "GPKG")
        add_qgis_style(path, "flags")
    else:
        _ogr(gdf, path, {"fgb": "FlatGeobuf"}[fmt])


def placemark_name(rec) -> str:
    """``#12 mining · 杭锦旗梭梭林自然保护区 (core)``: flag id, activity, zone."""
    zone = rec["zone_name"] or rec["zone_layer"] or "no zone"
    if rec["zone_regime"] and rec["zone_regime"] != rec["zone_layer"]:
        zone += f" ({rec['zone_regime']})"
    return f"#{rec['id']} {rec['activity']} · {zone}"


_KML = "http://www.opengis.net/kml/2.2"


def _write_kml(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """GDAL's KML with one name per placemark and one style per severity (styleUrl)."""
    out = _iso_dates(gdf)
    out.insert(0, "Name", pd.array([placemark_name(r) for _, r in gdf.iterrows()], dtype=pd.ArrowDtype(pa.string())))
    _ogr(out, path, "KML", dataset_options={"NameField": "Name"})
    ET.register_namespace("", _KML)
    tree = parse_xml(path)
    q = f"{{{_KML}}}"
    doc = tree.getroot().find(f"{q}Document")
    styles = []
    for sev, (r, g, b) in [*SEVERITY_COLOURS.items(), ("unknown", UNKNOWN_COLOUR)]:
        style = ET.Element(f"{q}Style", id=f"severity-{sev}")
        line = ET.SubElement(style, f"{q}LineStyle")
        ET.SubElement(line, f"{q}color").text = f"ff{b:02x}{g:02x}{r:02x}"
        ET.SubElement(line, f"{q}width").text = "2"
        poly = ET.SubElement(style, f"{q}PolyStyle")
        ET.SubElement(poly, f"{q}color").text = f"99{b:02x}{g:02x}{r:02x}"  # 60 % opaque
        styles.append(style)
    first = next((i for i, el in enumerate(doc) if el.tag in (f"{q}Schema", f"{q}Folder", f"{q}Placemark")), len(doc))
    doc[first:first] = styles
    placemarks = doc.iter(f"{q}Placemark")
    for (_, rec), pm in zip(gdf.iterrows(), placemarks, strict=True):
        sev = rec["severity"] if rec["severity"] in SEVERITY_COLOURS else "unknown"
        for inline in pm.findall(f"{q}Style"):  # GDAL's default red outline would override ours
            pm.remove(inline)
        at = max((i + 1 for i, el in enumerate(pm) if el.tag in (f"{q}name", f"{q}description")), default=0)
        url = ET.Element(f"{q}styleUrl")
        url.text = f"#severity-{sev}"
        pm.insert(at, url)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def severity_qml(field: str = "severity") -> str:
    """A QGIS style (QML): polygons coloured by severity (categorised renderer)."""
    root = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    renderer = ET.SubElement(
        root, "renderer-v2", type="categorizedSymbol", attr=field, symbollevels="0", enableorderby="0", forceraster="0"
    )
    cats = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")

    def symbol(parent, name: str, rgb) -> None:
        sym = ET.SubElement(parent, "symbol", type="fill", name=name, alpha="0.7", clip_to_extent="1", force_rhr="0")
        layer = ET.SubElement(sym, "layer", attrib={"class": "SimpleFill", "enabled": "1", "locked": "0", "pass": "0"})
        props = {
            "color": ",".join(map(str, (*rgb, 255))),
            "style": "solid",
            "outline_color": ",".join(map(str, (*(max(c - 60, 0) for c in rgb), 255))),
            "outline_style": "solid",
            "outline_width": "0.4",
            "outline_width_unit": "MM",
            "joinstyle": "bevel",
        }
        opts = ET.SubElement(layer, "Option", type="Map")  # QGIS >= 3.26
        for k, v in props.items():
            ET.SubElement(opts, "Option", name=k, type="QString", value=v)
        for k, v in props.items():  # older QGIS 3
            ET.SubElement(layer, "prop", k=k, v=v)

    for i, (sev, rgb) in enumerate(reversed(SEVERITY_COLOURS.items())):  # critical first
        ET.SubElement(cats, "category", value=sev, symbol=str(i), label=sev, render="true")
        symbol(symbols, str(i), rgb)
    n = len(SEVERITY_COLOURS)
    ET.SubElement(cats, "category", value="", symbol=str(n), label="other", render="true")
    symbol(symbols, str(n), UNKNOWN_COLOUR)
    symbol(ET.SubElement(renderer, "source-symbol"), "0", UNKNOWN_COLOUR)
    ET.SubElement(root, "layerGeometryType").text = "2"  # polygon
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode")


def add_qgis_style(path: Path, table: str) -> None:
    """Store the severity style in the GeoPackage's ``layer_styles`` (QGIS's own table and
    columns, registered as an attributes table) as the layer's default: QGIS opens it coloured."""
    db = sqlite3.connect(path)
    try:
        with db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),"
                " f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,"
                " useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),"
                " update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
            )
            geom_col = db.execute(
                "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (table,)
            ).fetchone()[0]
            db.execute(
                "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,"
                " styleName, styleQML, styleSLD, useAsDefault, description, owner, ui)"
                " VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '', '')",
                (table, geom_col, "severity", severity_qml(), "redline flags coloured by severity"),
            )
            db.execute(
                "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, last_change)"
                " VALUES ('layer_styles', 'attributes', 'layer_styles', strftime('%Y-%m-%dT%H:%M:%fZ','now'))"
            )
    finally:
        db.close()


WORK_PREFIX = ".redline-export-"


def remove_stale_work_dirs(folder: Path) -> list[Path]:
    """Remove the work folders of exports that died in ``folder`` (lock free); the removed ones."""
    removed = []
    for work in folder.glob(f"{WORK_PREFIX}*"):
        try:
            fd = os.open(work / ".lock", os.O_RDONLY)
        except FileNotFoundError:  # not made by export_flags, or being removed
            continue
        except NotADirectoryError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # an export in progress
            os.close(fd)
            continue
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)
        removed.append(work)
    return removed


@contextmanager
def _work_dir(folder: Path):
    remove_stale_work_dirs(folder)
    for _ in range(5):
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=folder))
        fd = os.open(work / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # another export's clean-up may have taken it for a dead one before we locked it
            if os.stat(work / ".lock").st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise OSError(f"cannot make a work folder in {folder}")
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)


def export_flags(
    store: Store, path: str | Path, fmt: str | None = None, flt: FlagFilter | None = None, crs=None
) -> dict:
    """Write flags to ``path``; the file appears whole or not at all."""
    path = Path(path)
    fmt = (fmt or {".zip": "shp"}.get(path.suffix.lower(), path.suffix.lstrip("."))).lower()
    check_options(fmt, crs)
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: folder does not exist")
    gdf = flags_frame(store, flt, crs)
    with _work_dir(path.parent) as work:
        tmp = work / f"out{FORMATS[fmt][0]}"  # GDAL creates the file itself
        _write(gdf, tmp, fmt)
        checkpoint("export-written")
        os.replace(tmp, path)
    return {"path": str(path), "format": fmt, "features": len(gdf), "crs": gdf.crs.to_string()}
