"""Regions an inspector submits: checked, read, validated and turned into one lon/lat polygon.

Files are identified by content and read only through the allowlisted drivers of
:mod:`redline.safeio`; GeoJSON is parsed in Python. Work is bounded before GEOS sees the
geometry: vertex count, finite coordinates, and the number of self-crossings (repairing a
polygon that crosses itself everywhere costs quadratic time and memory).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from .errors import CRSError, InputError, TooLargeError
from .geo import STORAGE_CRS, parse_crs, polygonal, reproject, split_antimeridian
from .safeio import DEFAULT_LIMITS, GEOJSON_GEOMETRY_TYPES, Limits, finite_coordinates, geojson_crs, sniff_vector

CRS84 = "OGC:CRS84"


@dataclass(frozen=True)
class RegionLimits:
    """What one region may cost: the API takes these from settings."""

    max_vertices: int = 1_000_000
    max_features: int = 100_000
    max_crossings: int = 1_000  # self-intersections we agree to repair
    files: Limits = DEFAULT_LIMITS


def check_lonlat(geom, what: str) -> None:
    """Refuse coordinates that cannot be lon/lat: the usual sign of a wrong CRS."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise CRSError(
            f"{what}: coordinates ({minx:.1f}, {miny:.1f}, {maxx:.1f}, {maxy:.1f}) are not longitude/latitude; "
            "name the region's CRS (e.g. --crs EPSG:32649)"
        )


def self_crossings(geoms, stop_after: int) -> int:
    """Pairs of non-adjacent ring segments that intersect, in the invalid polygons of
    ``geoms``; counting stops once over ``stop_after`` (so an adversarial polygon costs
    little)."""
    geoms = np.asarray(geoms, dtype=object)
    polys = shapely.get_parts(geoms[~shapely.is_valid(geoms)])
    polys = polys[shapely.get_type_id(polys) == 3]
    if not len(polys):
        return 0
    coords, ring = shapely.get_coordinates(shapely.get_rings(polys), return_index=True)
    same = ring[:-1] == ring[1:]
    segments = shapely.linestrings(np.stack([coords[:-1], coords[1:]], axis=1)[same])
    seg_ring = ring[:-1][same]
    first = np.r_[0, np.flatnonzero(np.diff(seg_ring)) + 1]
    last = np.r_[first[1:] - 1, len(segments) - 1]
    ring_first, ring_last = np.empty(seg_ring.max() + 1, int), np.empty(seg_ring.max() + 1, int)
    ring_first[seg_ring[first]], ring_last[seg_ring[last]] = first, last
    tree = shapely.STRtree(segments)
    found = 0
    for start in range(0, len(segments), 32):
        a, b = tree.query(segments[start : start + 32], predicate="intersects")
        a = a + start
        keep = a < b
        a, b = a[keep], b[keep]
        same_ring = seg_ring[a] == seg_ring[b]
        adjacent = same_ring & ((b - a == 1) | ((a == ring_first[seg_ring[a]]) & (b == ring_last[seg_ring[b]])))
        found += int((~adjacent).sum())
        if found > stop_after:
            break
    return found


def prepare_region(geoms, crs, what: str = "region", limits: RegionLimits = RegionLimits()):
    """Union polygonal input geometries into one valid lon/lat region."""
    geoms = np.asarray(geoms, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(geoms):
        raise InputError(f"{what}: no geometry")
    n = int(shapely.get_num_coordinates(geoms).sum())
    if n > limits.max_vertices:
        raise TooLargeError(f"{what}: {n:,} vertices, over the limit of {limits.max_vertices:,}; simplify it first")
    finite_coordinates(geoms, what)
    src = parse_crs(crs)
    if src.is_geographic:
        check_lonlat(shapely.union_all(shapely.envelope(geoms)), what)
    crossings = self_crossings(geoms, limits.max_crossings)
    if crossings > limits.max_crossings:
        raise TooLargeError(
            f"{what}: the polygon crosses itself in more than {limits.max_crossings:,} places; "
            'repair it (e.g. QGIS "Fix geometries") or simplify it'
        )
    geoms = shapely.make_valid(reproject(geoms, src, STORAGE_CRS))
    geoms = np.array([split_antimeridian(g) for g in geoms], dtype=object)
    region = polygonal(shapely.make_valid(shapely.union_all(geoms)))
    if region is None:
        raise InputError(f"{what}: has no polygon (points or lines cannot be checked)")
    check_lonlat(region, what)
    return region


# --- GeoJSON (parsed in Python) ------------------------------------------------------------


def parse_json(data: bytes | str, what: str = "body"):
    """JSON from a client: invalid, or nested deeper than the parser's stack, is an input error."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{what} is not valid JSON") from None
    except RecursionError:
        raise InputError(f"{what}: JSON nested too deeply") from None


def geojson_geometries(doc, what: str = "region", max_features: int = 100_000) -> list:
    """Geometries of a GeoJSON geometry, Feature or FeatureCollection."""
    if not isinstance(doc, dict) or "type" not in doc:
        raise InputError(f"{what}: expected a GeoJSON geometry, Feature or FeatureCollection")
    kind = doc["type"]
    if kind == "FeatureCollection":
        features = doc.get("features")
        if not isinstance(features, list):
            raise InputError(f"{what}: FeatureCollection without a features array")
        if len(features) > max_features:
            raise TooLargeError(f"{what}: {len(features):,} features, over the limit of {max_features:,}")
        items = [f.get("geometry") if isinstance(f, dict) else None for f in features]
    elif kind == "Feature":
        items = [doc.get("geometry")]
    elif kind in GEOJSON_GEOMETRY_TYPES:
        items = [doc]
    else:
        raise InputError(f"{what}: unsupported GeoJSON type {str(kind)[:40]!r}")
    geoms = []
    for g in items:
        if g is None:
            continue
        try:
            with np.errstate(invalid="ignore"):  # NaN coordinates: refused below, with a clear message
                geoms.append(shapely.geometry.shape(g))
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, shapely.errors.ShapelyError) as exc:
            raise InputError(f"{what}: invalid GeoJSON geometry ({str(exc)[:200]})") from None
    return geoms


def region_from_geojson(doc, crs: str | None = None, what: str = "region", limits: RegionLimits = RegionLimits()):
    """A region from a parsed GeoJSON document (a request body, or a file)."""
    geoms = geojson_geometries(doc, what, limits.max_features)
    return prepare_region(geoms, _one_crs(crs, geojson_crs(doc), what) or CRS84, what, limits)


def _one_crs(given: str | None, declared, what: str):
    """``--crs`` names the CRS of data that has none; it never overrides what a file says."""
    if given is None or declared is None:
        return given if given is not None else declared
    g, d = parse_crs(given), parse_crs(declared)
    if not g.equals(d, ignore_axis_order=True):
        raise CRSError(
            f"{what}: the file declares {d.to_string()}, which contradicts the CRS given ({given}); "
            "drop the option, or fix the file"
        )
    return d


# --- files -----------------------------------------------------------------------------------


def read_region(
    path: str | Path, crs: str | None = None, limits: RegionLimits = RegionLimits(), name: str | None = None
):
    """A region from a file: GeoJSON, GeoPackage, zipped shapefile, KML/KMZ or FlatGeobuf,
    identified by content. ``name`` is how messages call the file (never a server path)."""
    path = Path(path)
    name = name or str(path)
    with tempfile.TemporaryDirectory(prefix="redline-region-") as work:
        source = sniff_vector(path, name, Path(work), limits.files)
        if source.geojson is not None:
            return region_from_geojson(source.geojson, crs, name, limits)
        try:
            info = pyogrio.read_info(source.path)
            if (
                info.get("geometry_type") in (None, "Unknown")
                and not info.get("geometry_name")
                and source.format == "GPKG"
            ):
                raise InputError(f"{name}: the layer has no geometry column")
            if info["features"] > limits.max_features:
                raise TooLargeError(f"{name}: {info['features']:,} features, over the limit of {limits.max_features:,}")
            gdf = pyogrio.read_dataframe(source.path)
        except (DataSourceError, DataLayerError) as exc:
            raise InputError(
                f"{name}: not a readable {source.format} dataset "
                f"({str(exc).splitlines()[0].replace(str(source.path), name)[:200]})"
            ) from None
    if "geometry" not in gdf or gdf.geometry is None or not hasattr(gdf, "crs"):
        raise InputError(f"{name}: the layer has no geometry column")
    declared = gdf.crs
    src = _one_crs(crs, declared, name)
    if src is None:
        raise CRSError(f"{name}: region has no CRS; name it with --crs (e.g. EPSG:4490)")
    return prepare_region(gdf.geometry.values, src, name, limits)
