"""An optional basemap under report maps, from a configured XYZ tile server (none by default).

``Settings.basemap_url`` (``REDLINE_BASEMAP_URL``) is a template such as
``https://tiles.example.org/{z}/{x}/{y}.png``. The tiles that cover a map are fetched (a few,
each bounded in time and size), mosaicked in Web Mercator and warped onto the map's own local
equidistant grid, so zones, scale bar and rings stay true. Anything that goes wrong (no server,
a slow or broken tile) leaves the map without a basemap: a report never fails for it.
"""

from __future__ import annotations

import io
import math
import urllib.request

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import Resampling, reproject, transform_bounds

MAX_TILES = 30  # per map: a 5 x 6 mosaic at most
TILE_PX = 256
TILE_TIMEOUT_S = 5.0
MAX_TILE_BYTES = 2 * 1024 * 1024
MAX_ZOOM = 18
MERCATOR_HALF = 20037508.342789244  # metres from the origin to the edge of the Web Mercator square


def _tile_range(lon0: float, lat0: float, lon1: float, lat1: float, z: int) -> tuple[int, int, int, int]:
    n = 2**z

    def tx(lon):
        return min(n - 1, max(0, int((lon + 180.0) / 360.0 * n)))

    def ty(lat):
        lat = max(min(lat, 85.0511), -85.0511)
        return min(n - 1, max(0, int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)))

    return tx(lon0), ty(lat1), tx(lon1), ty(lat0)  # x0, y0 (north), x1, y1 (south)


def _fetch(url: str) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with urllib.request.urlopen(url, timeout=TILE_TIMEOUT_S) as r:  # noqa: S310 - an admin's http(s) template
            data = r.read(MAX_TILE_BYTES + 1)
        if len(data) > MAX_TILE_BYTES:
            return None
        with Image.open(io.BytesIO(data)) as im:
            if im.size != (TILE_PX, TILE_PX):
                return None
            return np.asarray(im.convert("RGBA"))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def basemap_image(
    template: str, crs: str, extent: tuple[float, float, float, float], size_px: tuple[int, int]
) -> np.ndarray | None:
    """The basemap of a map in ``crs`` covering ``extent`` at ``size_px`` (width, height), as an
    RGBA array (rows, cols, 4) of floats in 0..1; None when no tile could be had."""
    width, height = size_px
    lon0, lat0, lon1, lat1 = transform_bounds(CRS.from_user_input(crs), CRS.from_epsg(4326), *extent, densify_pts=21)
    span = max(lon1 - lon0, 1e-9)
    z = max(0, min(MAX_ZOOM, int(math.floor(math.log2(360.0 / span * width / TILE_PX)))))
    while True:
        x0, y0, x1, y1 = _tile_range(lon0, lat0, lon1, lat1, z)
        if (x1 - x0 + 1) * (y1 - y0 + 1) <= MAX_TILES or z == 0:
            break
        z -= 1
    mosaic = np.zeros(((y1 - y0 + 1) * TILE_PX, (x1 - x0 + 1) * TILE_PX, 4), dtype=np.uint8)
    got = 0
    for ty in range(y0, y1 + 1):
        for tx in range(x0, x1 + 1):
            tile = _fetch(template.format(z=z, x=tx, y=ty))
            if tile is not None:
                r, c = (ty - y0) * TILE_PX, (tx - x0) * TILE_PX
                mosaic[r : r + TILE_PX, c : c + TILE_PX] = tile
                got += 1
    if not got:
        return None
    size = 2 * MERCATOR_HALF / 2**z / TILE_PX  # metres per mosaic pixel
    src_transform = Affine(size, 0, -MERCATOR_HALF + x0 * TILE_PX * size, 0, -size, MERCATOR_HALF - y0 * TILE_PX * size)
    minx, miny, maxx, maxy = extent
    dst_transform = Affine((maxx - minx) / width, 0, minx, 0, -(maxy - miny) / height, maxy)
    out = np.zeros((4, height, width), dtype=np.uint8)
    reproject(
        np.moveaxis(mosaic, 2, 0),
        out,
        src_transform=src_transform,
        src_crs=CRS.from_epsg(3857),
        dst_transform=dst_transform,
        dst_crs=CRS.from_user_input(crs),
        resampling=Resampling.bilinear,
    )
    return np.moveaxis(out, 0, 2).astype(float) / 255.0
