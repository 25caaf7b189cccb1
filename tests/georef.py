"""Independent references for expected values: pyproj directly, never ``redline.geo``.

Areas are geodesic on the WGS84 ellipsoid (pyproj ``Geod``); a polygon given in a projected CRS is
densified along its (straight, projected) edges before it is taken to lon/lat, so that the
reference follows the same edges as the engine's reprojected pixel outlines.
"""

from __future__ import annotations

import numpy as np
import shapely
from pyproj import Geod, Transformer

WGS84 = Geod(ellps="WGS84")
M2_PER_HA = 10_000.0


def geodesic_ha(geom_lonlat) -> float:
    """Geodesic area (ha) of a lon/lat (multi)polygon: outer rings less holes."""
    total = 0.0
    for poly in shapely.get_parts(geom_lonlat):
        for i, ring in enumerate([poly.exterior, *poly.interiors]):
            lons, lats = zip(*ring.coords)
            a = abs(WGS84.polygon_area_perimeter(lons, lats)[0])
            total += -a if i else a
    return total / M2_PER_HA


def to_lonlat(geom, crs: str, densify: float | None = None):
    """``geom`` from ``crs`` to lon/lat, its edges first split every ``densify`` units."""
    if densify:
        geom = shapely.segmentize(geom, densify)
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def projected_geodesic_ha(geom, crs: str, densify: float = 10.0) -> float:
    """Geodesic area (ha) of a polygon given in a projected CRS (e.g. UTM pixel boxes)."""
    return geodesic_ha(to_lonlat(geom, crs, densify))
