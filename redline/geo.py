"""Geodesy and CRS helpers: one place for axis order, reprojection and areas.

Geometry is stored in lon/lat (EPSG:4326). Every transformer is built with
``always_xy=True`` because EPSG:4490 and EPSG:4326 are latitude-first in their
definitions while GIS files carry x=lon, y=lat.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapely
import shapely.ops
from pyproj import CRS, Geod, Transformer
from pyproj.exceptions import CRSError as _PyprojCRSError

from .errors import CRSError

STORAGE_CRS = CRS.from_epsg(4326)
GEOD = Geod(ellps="WGS84")
M2_PER_HA = 10_000.0


def parse_crs(value) -> CRS:
    """A pyproj CRS from anything a user may type ("EPSG:4490", "4490", WKT...)."""
    if isinstance(value, CRS):
        return value
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except _PyprojCRSError as exc:
        raise CRSError(f"unknown CRS {value!r}: {exc}") from None


@lru_cache(maxsize=64)
def _transformer(src_wkt: str, dst_wkt: str) -> Transformer:
    return Transformer.from_crs(CRS.from_wkt(src_wkt), CRS.from_wkt(dst_wkt), always_xy=True)


def transformer(src, dst) -> Transformer:
    return _transformer(parse_crs(src).to_wkt(), parse_crs(dst).to_wkt())


def reproject(geoms, src, dst=STORAGE_CRS):
    """Reproject a geometry or an array of geometries (vectorised over all coordinates)."""
    src_crs, dst_crs = parse_crs(src), parse_crs(dst)
    if src_crs == dst_crs:
        return geoms
    tr = transformer(src_crs, dst_crs)

    def _xy(coords: np.ndarray) -> np.ndarray:
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _xy)


def apply_affine(geoms, t):
    """Apply a raster's affine transform (pixel -> ground) to geometries."""
    a, b, c, d, e, f = t.a, t.b, t.c, t.d, t.e, t.f

    def _xy(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geoms, _xy)


def area_ha(geom) -> float:
    """Geodesic area of a lon/lat geometry on the WGS84 ellipsoid, in hectares."""
    if geom is None or geom.is_empty:
        return 0.0
    area, _ = GEOD.geometry_area_perimeter(geom)
    return abs(area) / M2_PER_HA


def areas_ha(geoms) -> np.ndarray:
    return np.fromiter((area_ha(g) for g in geoms), dtype=float, count=len(geoms))


def distance_m(a, b) -> float:
    """Geodesic distance between the nearest points of two lon/lat geometries, in metres."""
    pa, pb = shapely.ops.nearest_points(a, b)
    _, _, dist = GEOD.inv(pa.x, pa.y, pb.x, pb.y)
    return float(dist)


def polygonal(geom):
    """The polygonal part of ``geom`` (after make_valid a ring may leave lines or points)."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    return shapely.union_all(parts)
