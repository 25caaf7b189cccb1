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

from .errors import CRSError, InputError
from .safeio import require_terrestrial, user_crs

STORAGE_CRS = CRS.from_epsg(4326)
GEOD = Geod(ellps="WGS84")
M2_PER_HA = 10_000.0


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """``minx,miny,maxx,maxy`` (the API's ``bbox``, the CLI's ``--bbox``) as four numbers."""
    try:
        box = tuple(float(v) for v in value.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (box[0] <= box[2] and box[1] <= box[3]) or any(v != v for v in box):
        raise InputError("bbox must be minx,miny,maxx,maxy in CRS84 (lon/lat)")
    return box


def parse_crs(value) -> CRS:
    """A pyproj CRS: strings a user typed pass the allowlist of :func:`redline.safeio.user_crs`
    (EPSG codes, OGC URIs); CRS objects read from datasets must be terrestrial."""
    if isinstance(value, CRS):
        return require_terrestrial(value, "CRS")
    if hasattr(value, "to_wkt"):  # rasterio / GDAL CRS of a dataset we opened
        try:
            return require_terrestrial(CRS.from_wkt(value.to_wkt()), "the dataset's CRS")
        except _PyprojCRSError as exc:
            raise CRSError(f"unusable CRS: {exc}") from None
    return user_crs(value)


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


# Geometries wider or taller than this are densified before measuring: their edges are
# straight in lon/lat (as shapely intersects them), not geodesics.
DENSIFY_ABOVE_DEG = 0.5
DENSIFY_STEP_DEG = 0.05
# A geodesic polygon cannot span 180° of longitude (the world box would measure 0): wide
# geometries are measured in strips at most this wide.
STRIP_DEG = 90.0


def area_ha(geom) -> float:
    """Geodesic area of a lon/lat geometry on the WGS84 ellipsoid, in hectares.

    Small geometries (patches, zones) are measured as they are; large ones (a province, the
    whole world, a polar cap) are cut into longitude strips and densified first."""
    if geom is None or geom.is_empty:
        return 0.0
    minx, miny, maxx, maxy = geom.bounds
    if maxx - minx <= DENSIFY_ABOVE_DEG and maxy - miny <= DENSIFY_ABOVE_DEG:
        area, _ = GEOD.geometry_area_perimeter(geom)
        return abs(area) / M2_PER_HA
    total = 0.0
    for x0 in np.arange(minx, maxx, STRIP_DEG):
        strip = shapely.clip_by_rect(geom, x0, -90.0, min(x0 + STRIP_DEG, maxx), 90.0)
        for part in shapely.get_parts(polygonal(strip) or shapely.Polygon()):
            dense = shapely.segmentize(part, DENSIFY_STEP_DEG)
            area, _ = GEOD.geometry_area_perimeter(dense)
            total += abs(area)
    return total / M2_PER_HA


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


def split_antimeridian(geom):
    """A lon/lat polygon whose edges jump more than 180° of longitude crosses the
    antimeridian (RFC 7946: edges take the short way): unwrap it and cut it at ±180°.
    A ring that wraps all the way round encloses a pole and is closed over it.
    Edges that run along ±180° itself (the whole-world box) are not crossings."""
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon"]
    if not parts or not any(_crosses(p.exterior.coords) for p in parts):
        return geom
    pieces = []
    for p in parts:
        if not _crosses(p.exterior.coords):
            pieces.append(p)
            continue
        shell = _unwrap(np.asarray(p.exterior.coords)[:, :2])
        centre = shell[:, 0].mean()
        holes = []
        for ring in p.interiors:
            h = _unwrap(np.asarray(ring.coords)[:, :2])
            h[:, 0] += 360.0 * np.round((centre - h[:, 0].mean()) / 360.0)
            holes.append(h)
        unwrapped = shapely.make_valid(shapely.Polygon(shell, holes))
        lo = int(np.floor((unwrapped.bounds[0] + 180.0) / 360.0))
        hi = int(np.floor((unwrapped.bounds[2] + 180.0) / 360.0))
        for k in range(lo, hi + 1):
            piece = shapely.clip_by_rect(unwrapped, -180.0 + 360.0 * k, -90.0, 180.0 + 360.0 * k, 90.0)
            piece = polygonal(piece)
            if piece is not None:
                pieces.append(shapely.transform(piece, lambda xy, k=k: xy - [360.0 * k, 0.0]))
    return shapely.union_all(pieces)


def _crosses(coords) -> bool:
    xy = np.asarray(coords)
    if len(xy) < 2:
        return False
    a, b = xy[:-1, 0], xy[1:, 0]
    along = (np.abs(a) == 180.0) & (np.abs(b) == 180.0)
    return bool(((np.abs(b - a) > 180.0) & ~along).any())


def _unwrap(xy: np.ndarray) -> np.ndarray:
    xy = xy.copy()
    xy[:, 0] = np.unwrap(xy[:, 0], period=360.0)
    drift = xy[-1, 0] - xy[0, 0]
    if abs(drift) > 180.0:  # wrapped round a pole: close the ring over it
        pole = 90.0 if xy[:, 1].mean() > 0 else -90.0
        xy = np.vstack([xy, [[xy[-1, 0], pole], [xy[0, 0], pole]], xy[:1]])
    return xy
