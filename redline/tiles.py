"""Vector tiles (Mapbox Vector Tile, MVT) of flags and protection zones on the OGC
WebMercatorQuad tile matrix set. No web framework here: the API's router only parses the
request, calls :func:`render` and :func:`etag`, and answers.

One MVT layer per tile, named after the collection (``flags``, ``redline``, ``reserve``,
``permit``, ``admin``). Geometries are clipped to the tile plus a small buffer, moved to
tile coordinates (0..4096, y down) and generalised to the tile's resolution: simplified
with a tolerance of half a screen pixel (1/512 of the tile), then snapped to the integer grid
and repaired where that made a polygon invalid.

Flags below :data:`FLAG_POINT_ZOOM` are points, not polygons: a flag (a few hundred metres)
is under a pixel there. Flags are thinned to one point per cell of the tile's pixel grid (2
screen pixels at zoom 9, 4 at 8, 8 at 7 and below; the most severe, then the most
recently seen, then the oldest flag of the cell is kept, at its centroid, and ``pixel_flags``
says how many flags share the cell), so a zoomed-out tile stays small however many flags
there are. From
:data:`FLAG_POINT_ZOOM` on, flags are their polygons.

Empty tiles are ``b""`` (the API answers 204 No Content).

Jurisdiction is never decided here: callers pass a :class:`~redline.store.FlagFilter`
already narrowed by :meth:`redline.auth.Principal.scope`.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from typing import Any

import mapbox_vector_tile
import morecantile
import numpy as np
import shapely

from .cql import describe
from .errors import NotFoundError
from .model import FLAG_TILE_FIELDS
from .store import FlagFilter, Store
from .vocab import LAYER_KINDS

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
EXTENT = 4096  # tile coordinates per tile side
SCREEN_PX = 256  # a tile is drawn 256 (CSS) pixels wide
BUFFER = 64  # tile units kept beyond each edge, so that outlines join across tiles
SIMPLIFY = EXTENT / SCREEN_PX / 2  # half a screen pixel, in tile units
FLAG_POINT_ZOOM = 10  # flags are points below this zoom, polygons from it on
MIN_ZOOM, MAX_ZOOM = 0, 22  # advertised tile matrix limits (the grid itself goes to 24)

COLLECTIONS = {
    "flags": "Flags: persistent human-activity conflicts with red lines and reserve zones",
    "redline": "Ecological protection red lines (current layer version)",
    "reserve": "Nature-reserve zones (current layer version)",
    "permit": "Permitted footprints (current layer version)",
    "admin": "Administrative units (current layer version)",
}
assert set(COLLECTIONS) == {"flags", *LAYER_KINDS}

FLAG_PROPERTIES = FLAG_TILE_FIELDS  # what a flag carries in a vector tile (redline.model)
ZONE_PROPERTIES = ("id", "name", "regime", "code", "layer")

_R = 6378137.0  # the Web Mercator sphere
_MAX_LAT = 85.0511287798066


@dataclass(frozen=True)
class TileRef:
    z: int
    x: int  # column
    y: int  # row, from the top

    def __post_init__(self) -> None:
        if not MIN_ZOOM <= self.z <= MAX_ZOOM:
            raise NotFoundError(f"tile matrix {self.z} is outside {TMS_ID} {MIN_ZOOM}..{MAX_ZOOM}")
        n = 1 << self.z
        if not (0 <= self.x < n and 0 <= self.y < n):
            raise NotFoundError(f"tile row {self.y} / column {self.x} is outside tile matrix {self.z} (0..{n - 1})")

    @property
    def mercator_bounds(self) -> tuple[float, float, float, float]:
        b = TMS.xy_bounds(morecantile.Tile(self.x, self.y, self.z))
        return b.left, b.bottom, b.right, b.top

    def lonlat_bounds(self, buffer: float = 0.0) -> tuple[float, float, float, float]:
        """The tile in lon/lat, grown by ``buffer`` tile units on each side."""
        minx, miny, maxx, maxy = self.mercator_bounds
        pad = (maxx - minx) * buffer / EXTENT
        (x0, y0), (x1, y1) = _lonlat(minx - pad, miny - pad), _lonlat(maxx + pad, maxy + pad)
        return max(x0, -180.0), max(y0, -_MAX_LAT), min(x1, 180.0), min(y1, _MAX_LAT)


@dataclass(frozen=True)
class TileSpec:
    """What a store needs to build a tile itself (PostGIS: ST_AsMVT), with the engine's rules."""

    z: int
    x: int
    y: int
    points: bool  # flags as thinned points (below FLAG_POINT_ZOOM)
    cell: int  # thinning cell, tile units
    tolerance_m: float  # simplification tolerance in Web Mercator metres
    mercator_bounds: tuple[float, float, float, float]
    lonlat_bounds: tuple[float, float, float, float]  # with the buffer
    extent: int = EXTENT
    buffer: int = BUFFER


def spec(tile: TileRef) -> TileSpec:
    m = tile.mercator_bounds
    return TileSpec(
        tile.z,
        tile.x,
        tile.y,
        tile.z < FLAG_POINT_ZOOM,
        point_cell(tile.z),
        (m[2] - m[0]) / EXTENT * SIMPLIFY,
        m,
        tile.lonlat_bounds(BUFFER),
    )


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return math.degrees(x / _R), math.degrees(2 * math.atan(math.exp(y / _R)) - math.pi / 2)


def _to_tile(geoms, tile: TileRef):
    """lon/lat geometries → tile coordinates (0..EXTENT, y down), vectorised."""
    minx, miny, maxx, maxy = tile.mercator_bounds
    sx, sy = EXTENT / (maxx - minx), EXTENT / (maxy - miny)

    def xy(c: np.ndarray) -> np.ndarray:
        lon = np.radians(c[:, 0])
        lat = np.radians(np.clip(c[:, 1], -_MAX_LAT, _MAX_LAT))
        mx, my = _R * lon, _R * np.log(np.tan(np.pi / 4 + lat / 2))
        return np.column_stack([(mx - minx) * sx, (maxy - my) * sy])

    return shapely.transform(geoms, xy)


def _generalised(geoms, tile: TileRef) -> np.ndarray:
    """Clip to the tile (+ buffer), move to tile units, simplify: an array, None for dropped."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return geoms
    rect = tile.lonlat_bounds(BUFFER)
    b = shapely.bounds(geoms)
    crossing = ~((b[:, 0] >= rect[0]) & (b[:, 1] >= rect[1]) & (b[:, 2] <= rect[2]) & (b[:, 3] <= rect[3]))
    clipped = geoms.copy()
    clipped[crossing] = shapely.clip_by_rect(geoms[crossing], *rect)  # the rest lies inside already
    local = _to_tile(clipped, tile)
    simple = shapely.simplify(local, SIMPLIFY, preserve_topology=False)
    # what the MVT encoder would do one feature at a time, vectorised: snap to the integer
    # grid, repair what that (or the simplification) made invalid, exterior rings
    # counter-clockwise in y-down tile units
    simple = shapely.transform(simple, np.round)
    for i in np.flatnonzero(~shapely.is_valid(simple) & ~shapely.is_missing(simple)):  # a few
        fixed = shapely.make_valid(simple[i])
        if fixed.geom_type == "GeometryCollection":  # keep the polygons, drop collapsed lines
            fixed = shapely.union_all([p for p in fixed.geoms if p.geom_type in ("Polygon", "MultiPolygon")])
        simple[i] = fixed
    simple = shapely.orient_polygons(simple, exterior_cw=False)
    simple[shapely.is_empty(simple) | (shapely.area(simple) <= 0)] = None
    return simple


def point_cell(z: int) -> int:
    """The thinning cell of a point zoom, in tile units."""
    return (EXTENT // SCREEN_PX) << min(3, max(1, FLAG_POINT_ZOOM - z))


def _props(row: dict, keys) -> dict:
    return {k: row[k] for k in keys if row.get(k) is not None}  # MVT has no null


def flag_features(store: Store, tile: TileRef, flt: FlagFilter | None = None) -> list[dict]:
    """The flags of one tile, as MVT features (geometry in tile units)."""
    flt = replace(
        flt or FlagFilter(),
        bbox=tile.lonlat_bounds(BUFFER),
        region=None,
        limit=None,
        after_id=None,
        offset=None,
        sortby=(),
    )
    if tile.z >= FLAG_POINT_ZOOM:
        rows = store.flags(flt)
        geoms = [r.pop("geometry") for r in rows]
        out = []
        for r, g in zip(rows, _generalised(geoms, tile)):
            if g is not None:
                out.append({"geometry": g, "properties": _props(r, FLAG_PROPERTIES), "id": r["id"]})
        return out
    # points at the centre of each flag's bounding box, thinned to one per cell in the store
    return [
        {
            "geometry": shapely.Point(r["px"], r["py"]),
            "id": r["id"],
            "properties": {**_props(r, FLAG_PROPERTIES), "pixel_flags": r["pixel_flags"]},
        }
        for r in store.flag_cells(flt, spec(tile))
    ]


def zone_features(store: Store, kind: str, tile: TileRef, where=None) -> list[dict]:
    """The zones of one tile (``where``: a checked CQL2 filter, redline.cql.parse)."""
    zones = store.zones((kind,), bbox=tile.lonlat_bounds(BUFFER), cql=where)
    out = []
    for z, g in zip(zones, _generalised([z.geometry for z in zones], tile)):
        if g is not None:
            props = _props(
                {"id": z.id, "name": z.name, "regime": z.regime, "code": z.code, "layer": z.kind}, ZONE_PROPERTIES
            )
            out.append({"geometry": g, "properties": props, "id": z.id})
    return out


class _ZoneTileCache:
    """Encoded zone tiles, process-wide, by database, layer version, tile and filter: a layer
    version never changes (a load makes a new one), so an entry is never stale. Bounded in
    bytes, least recently used out first."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.size = max_bytes, 0
        self.entries: OrderedDict[Any, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            hit = self.entries.get(key)
            if hit is not None:
                self.entries.move_to_end(key)
            return hit

    def put(self, key, body: bytes) -> None:
        with self.lock:
            if key in self.entries or len(body) > self.max_bytes // 8:
                return
            self.entries[key] = body
            self.size += len(body) + 200
            while self.size > self.max_bytes:
                _, old = self.entries.popitem(last=False)
                self.size -= len(old) + 200

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.size = 0


ZONE_TILES = _ZoneTileCache(64 << 20)


def render(
    store: Store,
    collection: str,
    tile: TileRef,
    flt: FlagFilter | None = None,
    in_database: bool = True,
    version: str | None = None,
) -> bytes:
    """One MVT tile of ``collection``; ``b""`` when it holds no feature. ``flt`` must already
    carry the caller's jurisdiction; for zone collections only its ``cql`` filter applies.
    With the ``version`` of :func:`data_version`, zone tiles are kept (:data:`ZONE_TILES`)."""
    if collection not in COLLECTIONS:
        raise NotFoundError(f"no tiles for {collection!r}; there are: {', '.join(COLLECTIONS)}")
    key = None
    if collection != "flags" and version is not None:
        key = (
            store.identity,
            collection,
            version,
            tile.z,
            tile.x,
            tile.y,
            in_database,
            describe(flt.cql if flt is not None else None),
        )
        hit = ZONE_TILES.get(key)
        if hit is not None:
            return hit
    body = _render(store, collection, tile, flt, in_database)
    if key is not None:
        ZONE_TILES.put(key, body)
    return body


def _render(store: Store, collection: str, tile: TileRef, flt: FlagFilter | None, in_database: bool) -> bytes:
    built = store.vector_tile(collection, spec(tile), flt) if in_database else None  # PostGIS: ST_AsMVT
    if built is not None:
        return built
    features = (
        flag_features(store, tile, flt)
        if collection == "flags"
        else zone_features(store, collection, tile, flt.cql if flt is not None else None)
    )
    if not features:
        return b""
    return mapbox_vector_tile.encode(
        [{"name": collection, "features": features}],
        default_options={
            "extents": EXTENT,
            "y_coord_down": True,
            "check_winding_order": False,  # done by _generalised (points have none)
        },
    )


def data_version(store: Store, collection: str) -> str | None:
    """What the tiles of ``collection`` depend on: the current layer versions (a zone
    collection: its own kind only) and, for flags, the latest scan and flag change. None
    where the store cannot say (callers then hash the tile itself)."""
    versions = {r["kind"]: [r["id"], r["version"], r["source_sha256"], r["loaded_at"]] for r in store.layer_versions()}
    if collection != "flags":
        return json.dumps(versions.get(collection))
    return json.dumps([versions, store.change_stamp()], default=str)


def etag(collection: str, tile: TileRef, flt: FlagFilter | None, version: str | None, body: bytes | None = None) -> str:
    """A strong ETag for one tile as one caller asked for it (the filter, which holds the
    jurisdiction). From the data version when known, else from the tile's bytes."""
    parts = {
        "c": collection,
        "t": [tile.z, tile.x, tile.y],
        "v": version,
        "f": _filter_key(flt) if collection == "flags" else describe(flt.cql if flt is not None else None),
    }
    if version is None:
        parts["b"] = hashlib.sha256(body or b"").hexdigest()
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'"{digest}"'


def _filter_key(flt: FlagFilter | None) -> dict | None:
    if flt is None:
        return None
    d = {k: v for k, v in asdict(flt).items() if k not in ("bbox", "limit", "after_id", "region", "cql")}
    d["region"] = shapely.to_wkb(flt.region, hex=True) if flt.region is not None else None
    d["cql"] = describe(flt.cql)
    return {k: sorted(v) if isinstance(v, list) else v for k, v in d.items()}


def tile_matrix_set() -> dict:
    """The WebMercatorQuad TileMatrixSet document (OGC 2DTMS 2.0)."""
    return TMS.model_dump(exclude_none=True, mode="json")


def zoom_limits(collection: str) -> tuple[int, int]:
    return MIN_ZOOM, MAX_ZOOM
