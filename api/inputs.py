"""Parsing user input at the edge: GeoJSON bodies, uploaded files, filters."""

from __future__ import annotations

import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path

import shapely
from fastapi import UploadFile

from redline.config import Settings
from redline.errors import InputError, TooLargeError
from redline.regions import prepare_region, read_region

GEOMETRY_TYPES = ("Polygon", "MultiPolygon", "GeometryCollection", "Point", "LineString", "MultiPoint",
                  "MultiLineString")
UPLOAD_SUFFIXES = (".gpkg", ".zip", ".kml", ".kmz", ".geojson", ".json", ".fgb")
CRS84 = "OGC:CRS84"


def geojson_geometries(doc, settings: Settings) -> list:
    """Geometries of a GeoJSON geometry, Feature or FeatureCollection."""
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError("expected a GeoJSON geometry, Feature or FeatureCollection")
    kind = doc["type"]
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise InputError("FeatureCollection without a features array")
        if len(features) > settings.max_region_features:
            raise TooLargeError(f"{len(features)} features, over the limit of {settings.max_region_features}")
        items = [f.get("geometry") if isinstance(f, dict) else None for f in features]
    elif kind == "Feature":
        items = [doc.get("geometry")]
    elif kind in GEOMETRY_TYPES:
        items = [doc]
    else:
        raise InputError(f"unsupported GeoJSON type {kind!r}")
    geoms = []
    for g in items:
        if g is None:
            continue
        try:
            geoms.append(shapely.geometry.shape(g))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
            raise InputError(f"invalid GeoJSON geometry: {exc}") from None
    return geoms


def region_from_geojson(doc, crs: str | None, settings: Settings):
    geoms = geojson_geometries(doc, settings)
    n = int(shapely.get_num_coordinates(geoms).sum()) if geoms else 0
    if n > settings.max_region_vertices:
        raise TooLargeError(f"{n:,} vertices, over the limit of {settings.max_region_vertices:,}; simplify it")
    return prepare_region(geoms, crs or CRS84, "region", settings.max_region_vertices)


def region_from_upload(upload: UploadFile, crs: str | None, settings: Settings):
    """Save an uploaded GeoPackage / zipped shapefile / KML / GeoJSON to a temp dir and read it."""
    name = Path(upload.filename or "region").name
    suffix = Path(name).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise InputError(f"unsupported upload {name!r}; send one of {', '.join(UPLOAD_SUFFIXES)}")
    folder = tempfile.mkdtemp(prefix="redline-upload-")
    try:
        path = Path(folder) / f"region{suffix}"  # never the client's name on disk
        with open(path, "wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
        return read_region(path, crs, settings.max_region_vertices)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parse_datetime_interval(value: str | None) -> tuple[date | None, date | None]:
    """OGC ``datetime``: an instant, or ``start/end`` with ``..`` for open ends."""
    if value is None:
        return None, None

    def one(text: str) -> date | None:
        if text in ("", ".."):
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            try:
                return date.fromisoformat(text)
            except ValueError:
                raise InputError(f"datetime {text!r} is not RFC 3339") from None

    if "/" in value:
        start, _, end = value.partition("/")
        a, b = one(start), one(end)
        if a and b and a > b:
            raise InputError("datetime interval ends before it starts")
        return a, b
    d = one(value)
    return d, d


def parse_bbox(value: str | None):
    if value is None:
        return None
    try:
        box = tuple(float(v) for v in value.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] <= box[2] and box[1] <= box[3]) or any(v != v for v in box):
        raise InputError("bbox must be minx,miny,maxx,maxy in CRS84 (lon/lat)")
    return box
