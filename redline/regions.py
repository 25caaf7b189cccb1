"""Regions an inspector submits: read any OGR source (or GeoJSON), validate, to lon/lat."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from .errors import CRSError, InputError, MissingFileError
from .geo import STORAGE_CRS, parse_crs, polygonal, reproject


def check_lonlat(geom, what: str) -> None:
    """Refuse coordinates that cannot be lon/lat: the usual sign of a wrong CRS."""
    minx, miny, maxx, maxy = shapely.bounds(geom)
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise CRSError(
            f"{what}: coordinates ({minx:.1f}, {miny:.1f}, {maxx:.1f}, {maxy:.1f}) are not longitude/latitude; "
            "name the region's CRS (e.g. --crs EPSG:32649)"
        )


def prepare_region(geoms, crs, what: str = "region", max_vertices: int = 1_000_000):
    """Union polygonal input geometries into one valid lon/lat region."""
    geoms = np.asarray(geoms, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if not len(geoms):
        raise InputError(f"{what}: no geometry")
    n = int(shapely.get_num_coordinates(geoms).sum())
    if n > max_vertices:
        raise InputError(f"{what}: {n:,} vertices, over the limit of {max_vertices:,}; simplify it first")
    src = parse_crs(crs)
    if src.is_geographic:
        check_lonlat(shapely.union_all(shapely.envelope(geoms)), what)
    region = polygonal(shapely.make_valid(shapely.union_all(shapely.make_valid(geoms))))
    if region is None:
        raise InputError(f"{what}: has no polygon (points or lines cannot be checked)")
    region = reproject(region, src, STORAGE_CRS)
    check_lonlat(region, what)
    return region


def read_region(path: str | Path, crs: str | None = None, max_vertices: int = 1_000_000):
    """A region from a file: GeoPackage, zipped shapefile, KML, GeoJSON, ..."""
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    try:
        gdf = pyogrio.read_dataframe(path)
    except (DataSourceError, DataLayerError) as exc:
        raise InputError(f"{path}: not a readable vector dataset ({str(exc).splitlines()[0]})") from None
    src = crs or gdf.crs
    if src is None:
        raise CRSError(f"{path}: region has no CRS; name it with --crs (e.g. EPSG:4490)")
    return prepare_region(gdf.geometry.values, src, str(path), max_vertices)
