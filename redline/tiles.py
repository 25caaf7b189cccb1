"""Vector tiles (Mapbox Vector Tile, MVT) of flags and protection zones on the OGC
WebMercatorQuad tile matrix set. No web framework here: the API's router only parses the
request, calls :func:`render` and :func:`etag`, and answers.

One MVT layer per tile, named after the collection (``flags``, ``redline``, ``reserve``,
``permit``, ``admin``, ``control``). Geometries are clipped to the tile plus a small buffer, moved to
tile coordinates (0..4096, y down) and generalised to the tile's resolution: simplified
with a tolerance of half a screen pixel (1/512 of the tile), then snapped to the integer grid
and repaired where that made a polygon invalid.

Flags below :data:`FLAG_POINT_ZOOM` are points, not polygons: a flag (a few hundred metres)
is under a pixel there. Flags are thinned to one point per cell of the tile's pixel grid (2
screen pixels at zoom 9, 4 at 8, 8 at 7 and below; the most severe, then the most
recently seen, then the oldest flag of the cell is kept, at its centroid, and ``pixel_flags``
says how many flags share the cell), so a zoomed-out tile stays small however many flags
there are. From :data:`FLAG_POINT_ZOOM` on, flags are their polygons.

Zoomed out, the work does not grow with the data as the tile does:

- flag points are thinned here from :class:`FlagPoints`, every flag's point and tile fields
  as arrays, loaded once per data version (the store's SQL thinning, ``flag_cells``, stays
  for CQL2 filters);
- zone tiles up to zoom 11 draw the zones' generalised copies of the zoom's band
  (``zone_bands``, written with each layer version; :data:`redline.store.core.ZONE_BANDS`),
  without the zones under a pixel there;
- zone tiles up to :data:`PRERENDER_ZOOM` are rendered once, when a layer version is
  loaded (:func:`prerender_zone_tiles`, table ``zone_tiles``), and served from there unless a
  CQL2 filter applies;
- tiles are encoded by :func:`encode` (the MVT protobuf, geometry commands computed for all
  features at once) and kept per data version (:data:`TILES`).

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
from datetime import date, datetime
from typing import Any

import morecantile
import numpy as np
import shapely
from mapbox_vector_tile.Mapbox import vector_tile_pb2

from .cql import SORT_RANKS, describe
from .errors import NotFoundError
from .model import FLAG_TILE_FIELDS
from .store import FlagFilter, Store
from .store.core import zone_band
from .vocab import ZONE_KINDS

TMS_ID = "WebMercatorQuad"
TMS = morecantile.tms.get(TMS_ID)
EXTENT = 4096  # tile coordinates per tile side
SCREEN_PX = 256  # a tile is drawn 256 (CSS) pixels wide
BUFFER = 64  # tile units kept beyond each edge, so that outlines join across tiles
SIMPLIFY = EXTENT / SCREEN_PX / 2  # half a screen pixel, in tile units
FLAG_POINT_ZOOM = 10  # flags are points below this zoom, polygons from it on
# zone tiles of zooms 0..8 are rendered with each layer version (zone_tiles): below 9 a tile of
# a province's red lines holds thousands of zones (z8: ~0.2 s to build, a few ms to read)
PRERENDER_ZOOM = 8
# what a zone tile holds (clip, simplification, bands, properties, encoding): bump it when that
# changes, so that tiles pre-rendered by an older redline are rendered afresh instead of served
ZONE_TILE_RULES = 1
PRERENDER_BATCH = 32  # pre-rendered tiles written per transaction
MIN_ZOOM, MAX_ZOOM = 0, 22  # advertised tile matrix limits (the grid itself goes to 24)

COLLECTIONS = {
    "flags": "Flags: persistent human-activity conflicts with red lines and reserve zones",
    "redline": "Ecological protection red lines (current layer version)",
    "reserve": "Nature-reserve zones (current layer version)",
    "permit": "Permitted footprints (current layer version)",
    "admin": "Administrative units (current layer version)",
    "control": "Environmental control units (环境管控单元, three lines one list): regime is the unit type"
    " (priority_protection_unit, key_control_unit, general_control_unit), code the unit code access lists"
    " cite (current layer version)",
}
assert set(COLLECTIONS) == {"flags", *ZONE_KINDS}  # the OGC API collections too (api.features)

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
    band: int | None = None  # the zones' generalised copies drawn (store.core.ZONE_BANDS)
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
        zone_band(tile.z),
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


def flag_features(store: Store, tile: TileRef, flt: FlagFilter | None = None, version=None) -> list[dict]:
    """The flags of one tile, as MVT features (geometry in tile units; points as (x, y)).
    ``version``: the flags' :func:`data_version`, when the caller has it."""
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
    # points at the centre of each flag's bounding box, thinned to one per cell: by the
    # engine from the flags' points, or by the store's SQL where a CQL2 filter applies
    if _thinned_here(tile, flt):
        points = FLAG_POINTS.get(store, version if version is not None else store.change_stamp())
        return points.cells(flt, spec(tile))
    return [
        {
            "geometry": (float(r["px"]), float(r["py"])),
            "id": r["id"],
            "properties": {**_props(r, FLAG_PROPERTIES), "pixel_flags": r["pixel_flags"]},
        }
        for r in store.flag_cells(flt, spec(tile))
    ]


def _day(value) -> int | None:
    """An ISO date (or timestamp) text, date or datetime as a day number."""
    if value is None:
        return None
    if isinstance(value, (date, datetime)):
        return value.toordinal()
    return date.fromisoformat(str(value)[:10]).toordinal()


def _coded(values, vocab: list) -> np.ndarray:
    """``values`` as indexes into ``vocab``, which is extended (in place) with those new to it;
    None: -1."""
    index: dict = {v: i for i, v in enumerate(vocab)}
    index[None] = -1

    def code(v) -> int:
        c = index.get(v)
        if c is None:
            c = index[v] = len(vocab)
            vocab.append(v)
        return c

    return np.fromiter(map(code, values), np.int32, len(values))


class FlagPoints:
    """Every flag of one store at one data version, as columns: the centre of its bounding
    box in Web Mercator metres, its tile properties and the fields the tile filters test
    (categories as integer codes). Kept in thinning priority order (the most severe, then
    the latest seen, then the lowest id first), so that a cell keeps its first flag.

    Thinning 100,000 flags for a zoomed-out tile is then a few array operations instead of a
    window query over every flag of the tile (:meth:`Store.flag_cells`, still used for CQL2
    filters); the rule and the result are the same. After a few flags change (a workflow
    move), :meth:`patched` gives the next data version's points from these and the changed
    flags' rows, without reading every flag again."""

    _CODED = tuple(k for k in FLAG_PROPERTIES if k not in ("id", "area_ha"))
    _ARRAYS = ("id", *_CODED, "mx", "my", "area")  # what a patch merges; the rest is derived

    def __init__(self, columns: dict[str, Any]):
        self.vocab: dict[str, list] = {k: [] for k in self._CODED}
        self._sorted(self._arrays(columns))

    def _arrays(self, columns: dict[str, Any]) -> dict[str, np.ndarray]:
        """Columns of flags (as :meth:`Store.flag_points` gives them) as arrays, in their order,
        categories coded in :attr:`vocab` (extended with the values new to it)."""
        cx, cy = np.asarray(columns["cx"], float), np.asarray(columns["cy"], float)
        return {
            "id": np.asarray(columns["id"], np.int64),
            **{k: _coded(columns[k], self.vocab[k]) for k in self._CODED},
            "mx": np.radians(cx) * _R,
            "my": np.log(np.tan(np.pi / 4 + np.radians(cy) / 2)) * _R,
            "area": np.array([np.nan if v is None else v for v in columns["area_ha"]], float),
        }

    def _sorted(self, a: dict[str, np.ndarray]) -> None:
        """Keep the arrays ``a`` in priority order, with the day numbers the filters test."""
        self.n = len(a["id"])
        days = {k: np.array([_day(v) for v in self.vocab[k]] + [-1], np.int64) for k in ("first_seen", "last_seen")}
        last = days["last_seen"][a["last_seen"]]  # null: -1 (the table's last entry)
        days["first_seen"][-1] = np.iinfo(np.int64).max
        first = days["first_seen"][a["first_seen"]]
        ranks = np.array([SORT_RANKS["severity"].index(v) for v in self.vocab["severity"]] + [-1])
        rank = ranks[a["severity"]]
        order = np.lexsort((a["id"], -last, last < 0, -rank))  # the last key sorts first (ids are unique)
        self.id, self.last_day, self.first_day = a["id"][order], last[order], first[order]
        self.codes = {k: a[k][order] for k in self._CODED}
        self.mx, self.my, self.area = a["mx"][order], a["my"][order], a["area"][order]

    @classmethod
    def load(cls, store: Store) -> FlagPoints:
        return cls(store.flag_points())

    def patched(self, changes: dict[str, Any]) -> FlagPoints:
        """These points with the flags of ``changes`` (columns as :meth:`Store.flag_points`
        gives them: flags changed or new since) as they are now, as a new object: this one
        may be in use by another thread. The same points as a full load of that version."""
        new = object.__new__(FlagPoints)
        new.vocab = {k: list(v) for k, v in self.vocab.items()}  # grows only: the old codes stay
        rows = new._arrays(changes)
        old = {"id": self.id, **self.codes, "mx": self.mx, "my": self.my, "area": self.area}
        kept = ~np.isin(self.id, rows["id"])
        new._sorted({k: np.concatenate([old[k][kept], rows[k]]) for k in self._ARRAYS})
        return new

    def _mask(self, flt: FlagFilter) -> np.ndarray:
        m = np.ones(self.n, bool)
        for k, wanted in (
            ("status", flt.status),
            ("severity", flt.severity),
            ("activity", flt.activity),
            ("admin_code", flt.admin_code),
        ):
            if wanted:
                index = {v: i for i, v in enumerate(self.vocab[k])}
                m &= np.isin(self.codes[k], [index[v] for v in wanted if v in index])
        if flt.since:
            m &= self.last_day >= _day(flt.since)
        if flt.until:
            m &= self.first_day <= _day(flt.until)
        return m

    def cells(self, flt: FlagFilter | None, s: TileSpec) -> list[dict]:
        """The thinned points of one tile (what :meth:`Store.flag_cells` gives), as features."""
        flt = flt or FlagFilter()
        assert flt.cql is None and flt.region is None and flt.after_id is None  # the store's (SQL) path
        minx, miny, maxx, maxy = s.mercator_bounds
        px = np.rint((self.mx - minx) * (s.extent / (maxx - minx)))
        py = np.rint((maxy - self.my) * (s.extent / (maxy - miny)))
        lo, hi = -s.buffer, s.extent + s.buffer
        m = self._mask(flt) & (px >= lo) & (px <= hi) & (py >= lo) & (py <= hi)
        idx = np.flatnonzero(m)  # in priority order
        if not len(idx):
            return []
        cx, cy = np.floor(px[idx] / s.cell).astype(np.int64), np.floor(py[idx] / s.cell).astype(np.int64)
        code = (cx - cx.min()) * (int(cy.max() - cy.min()) + 1) + (cy - cy.min())
        _, first, counts = np.unique(code, return_index=True, return_counts=True)  # first: the kept flag
        keep = idx[first]
        by_id = np.argsort(self.id[keep], kind="stable")
        keep, counts = keep[by_id], counts[by_id].tolist()
        columns: dict[str, list] = {"id": self.id[keep].tolist()}
        for k in self._CODED:
            vocab = self.vocab[k] + [None]  # code -1: null
            columns[k] = [vocab[c] for c in self.codes[k][keep].tolist()]
        columns["area_ha"] = [None if a != a else a for a in self.area[keep].tolist()]  # NaN: null
        names = [k for k in FLAG_PROPERTIES if k in columns]
        xs, ys = px[keep].tolist(), py[keep].tolist()
        out = []
        for j, values in enumerate(zip(*(columns[k] for k in names))):
            props = {k: v for k, v in zip(names, values) if v is not None}
            props["pixel_flags"] = counts[j]
            out.append({"geometry": (xs[j], ys[j]), "id": props["id"], "properties": props})
        return out


class _FlagPointsCache:
    """The latest :class:`FlagPoints` per store (process-wide), by data version, with the
    store's :meth:`~Store.change_stamp` they are at least as new as. A new version where only
    flags changed (workflow moves, ledger notes, a lead) patches the cached points with the
    changed flags' rows (:meth:`Store.flag_point_changes`); a new scan or layer version, or
    a first request, loads every flag. ``loads`` counts both ways ("full", "patched")."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[Any, list, FlagPoints]] = {}
        self.loads = {"full": 0, "patched": 0}
        self.lock = threading.Lock()

    def get(self, store: Store, version) -> FlagPoints:
        with self.lock:  # under the lock: one load per version
            hit = self.entries.get(store.identity)
            if hit is not None and hit[0] == version:
                return hit[2]
            stamp = store.change_stamp()  # before the rows: they are at least this new
            changes = store.flag_point_changes(hit[1], stamp) if hit is not None else None
            if hit is not None and changes is not None:
                points, how = hit[2].patched(changes), "patched"
            else:
                points, how = FlagPoints.load(store), "full"
            self.loads[how] += 1
            self.entries[store.identity] = (version, stamp, points)
            return points

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


FLAG_POINTS = _FlagPointsCache()


def warm(store: Store) -> None:
    """Load the flag points of the current data version now (a server's start), so that the
    first zoomed-out flag tile someone asks for is not the one that waits for them."""
    FLAG_POINTS.get(store, data_version(store, "flags"))


def zone_features(store: Store, kind: str, tile: TileRef, where=None) -> list[dict]:
    """The zones of one tile (``where``: a checked CQL2 filter, redline.cql.parse)."""
    zones = store.tile_zones(kind, tile.lonlat_bounds(BUFFER), zone_band(tile.z), where)
    out = []
    for z, g in zip(zones, _generalised([z["geometry"] for z in zones], tile)):
        if g is not None:
            props = {"id": z["id"], "name": z["name"], "regime": z["regime"], "code": z["code"], "layer": z["kind"]}
            if props["code"] is None:  # MVT has no null
                del props["code"]
            out.append({"geometry": g, "properties": props, "id": z["id"]})
    return out


# MVT encoding ---------------------------------------------------------------------------
# The Mapbox Vector Tile 2.1 protobuf (the schema mapbox-vector-tile ships), filled with the
# geometry commands of every feature of a tile computed at once with numpy: the library's own
# encoder walks each coordinate in Python, which costs more than building the tile.
_MOVE_TO, _LINE_TO, _CLOSE = 1, 2, 7


def _command(cmd: int, count) -> Any:
    return (np.asarray(count, np.int64) << 3) | cmd


def _zigzag(v: np.ndarray) -> np.ndarray:
    return (v << 1) ^ (v >> 63)


def _polygon_commands(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The geometry commands of polygons (tile units, rings oriented), all at once: one flat
    array and each feature's (start, end) in it. Coordinates are rounded to the grid, repeated
    points dropped, and rings of under 3 points (with a dropped exterior's holes) left out."""
    polys, feature_of_poly = shapely.get_parts(geoms, return_index=True)
    rings, poly_of_ring = shapely.get_rings(polys, return_index=True)
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    xy = np.rint(xy).astype(np.int64)
    n_rings = len(rings)
    # drop each ring's closing point, then points equal to the one before in the ring
    last = np.r_[ring_of[1:] != ring_of[:-1], True]
    same = np.r_[False, (ring_of[1:] == ring_of[:-1]) & (xy[1:] == xy[:-1]).all(axis=1)]
    keep = ~last & ~same
    xy, ring_of = xy[keep], ring_of[keep]
    counts = np.bincount(ring_of, minlength=n_rings)
    exterior = np.r_[True, poly_of_ring[1:] != poly_of_ring[:-1]] if n_rings else np.zeros(0, bool)
    bad_poly = np.zeros(len(polys), bool)
    bad_poly[poly_of_ring[exterior & (counts < 3)]] = True
    good_ring = (counts >= 3) & ~bad_poly[poly_of_ring]
    xy, ring_of = xy[good_ring[ring_of]], ring_of[good_ring[ring_of]]
    rings_kept = np.flatnonzero(good_ring)
    counts = counts[rings_kept]
    feature_of_ring = feature_of_poly[poly_of_ring[rings_kept]]
    # the cursor runs on across a feature's rings and starts at (0, 0) for each feature
    feature_of_point = np.repeat(feature_of_ring, counts)
    delta = np.diff(xy, axis=0, prepend=np.zeros((1, 2), np.int64))
    new_feature = np.r_[True, feature_of_point[1:] != feature_of_point[:-1]] if len(xy) else np.zeros(0, bool)
    delta[new_feature] = xy[new_feature]
    # per ring: MoveTo(1) x y, LineTo(n-1) (x y)..., ClosePath
    size = 2 * counts + 3
    start = np.cumsum(size) - size
    out = np.empty(int(size.sum()), np.int64)
    out[start] = _command(_MOVE_TO, 1)
    out[start + 3] = _command(_LINE_TO, counts - 1)
    out[start + size - 1] = _command(_CLOSE, 1)
    point_start = np.cumsum(counts) - counts
    ring_index = np.repeat(np.arange(len(counts)), counts)
    j = np.arange(len(xy)) - point_start[ring_index]
    pos = start[ring_index] + 1 + 2 * j + (j > 0)
    zz = _zigzag(delta)
    out[pos], out[pos + 1] = zz[:, 0], zz[:, 1]
    per_feature = np.bincount(feature_of_ring, weights=size, minlength=len(geoms)).astype(np.int64)
    ends = np.cumsum(per_feature)
    return out, np.column_stack([ends - per_feature, ends])


def encode(name: str, features: list[dict]) -> bytes:
    """One MVT layer of ``features`` ({"id", "properties", "geometry"}: polygons in tile units,
    or an (x, y) point), as what :func:`mapbox_vector_tile.decode` reads back; ``b""`` when no
    feature has a geometry left."""
    if not features:
        return b""
    tile = vector_tile_pb2.tile()
    layer = tile.layers.add()
    layer.name, layer.version, layer.extent = name, 2, EXTENT
    points = isinstance(features[0]["geometry"], tuple)
    if points:
        xy = _zigzag(np.rint(np.array([f["geometry"] for f in features], float)).astype(np.int64))
        cmds = np.column_stack([np.full(len(features), _command(_MOVE_TO, 1)), xy]).ravel()
        span = np.arange(0, 3 * len(features) + 1, 3)
        spans = np.column_stack([span[:-1], span[1:]])
        kind = vector_tile_pb2.tile.Point
    else:
        cmds, spans = _polygon_commands(np.array([f["geometry"] for f in features], dtype=object))
        kind = vector_tile_pb2.tile.Polygon
    flat = cmds.tolist()
    keys: dict[str, int] = {}
    values: dict[tuple, int] = {}
    for f, (a, b) in zip(features, spans.tolist()):
        if a == b:
            continue  # nothing left at this resolution
        out = layer.features.add()
        out.id, out.type = f["id"], kind
        tags: list[int] = []
        for k, v in f["properties"].items():
            ki = keys.get(k)
            if ki is None:
                ki = keys[k] = len(keys)
                layer.keys.append(k)
            vk = (type(v), v)
            vi = values.get(vk)
            if vi is None:
                vi = values[vk] = len(values)
                value = layer.values.add()
                if isinstance(v, bool):
                    value.bool_value = v
                elif isinstance(v, int):
                    value.int_value = v
                elif isinstance(v, float):
                    value.double_value = v
                else:
                    value.string_value = str(v)
            tags += (ki, vi)
        out.tags.extend(tags)
        out.geometry.extend(flat[a:b])
    return tile.SerializeToString() if layer.features else b""


class TileCache:
    """Encoded tiles, process-wide, by database, data version (:func:`data_version`), tile and
    filter: a tile of one data version never changes (a layer load, a scan, a flag change
    make a new version), so an entry is never stale. Bounded in bytes, least recently used
    out first."""

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


TILES = TileCache(64 << 20)


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
    With the ``version`` of :func:`data_version`, tiles are kept (:data:`TILES`)."""
    if collection not in COLLECTIONS:
        raise NotFoundError(f"no tiles for {collection!r}; there are: {', '.join(COLLECTIONS)}")
    key = None
    if version is not None:
        wanted = (
            json.dumps(_filter_key(flt), sort_keys=True, default=str)
            if collection == "flags"
            else describe(flt.cql if flt is not None else None)
        )
        key = (store.identity, collection, version, tile.z, tile.x, tile.y, in_database, wanted)
        hit = TILES.get(key)
        if hit is not None:
            return hit
    body = _prerendered(store, collection, tile, flt) if in_database else None
    if body is None:
        body = _render(store, collection, tile, flt, in_database, version)
    if key is not None:
        TILES.put(key, body)
    return body


def _prerendered(store: Store, collection: str, tile: TileRef, flt: FlagFilter | None) -> bytes | None:
    """The zone tile as :func:`prerender_zone_tiles` wrote it for the current layer version
    (``b""``: empty), or None where it must be rendered: a CQL2 filter, a zoom above
    :data:`PRERENDER_ZOOM`, or that version's tiles not (all, or not by these rules) written."""
    if collection == "flags" or tile.z > PRERENDER_ZOOM or (flt is not None and flt.cql is not None):
        return None
    return store.zone_tile(collection, tile.z, tile.x, tile.y, ZONE_TILE_RULES)


def prerender_zone_tiles(store: Store, kind: str) -> dict | None:
    """Render the zone tiles of zooms 0..:data:`PRERENDER_ZOOM` of the current ``kind``
    version into the store (``zone_tiles``) as :func:`render` builds them (PostGIS: ST_AsMVT;
    SQLite: the engine's encoder), the other versions' tiles dropped. Only the tiles that can
    hold a zone are rendered (those whose buffered box meets the layer's extent) and only
    the non-empty ones kept; the set is marked complete last, once every tile is there, so a
    run cut short leaves tiles that are never served (they are rendered per request) and
    loses nothing. Returns what was written, or None when ``kind`` has no version."""
    if kind not in ZONE_KINDS:
        return None
    current = store.layer_versions(kind=kind)
    if not current:
        return None
    lv_id = current[0]["id"]
    store.clear_zone_tiles(kind)
    ext = store.extent(kind)
    rendered = kept = size = 0
    batch: list[tuple[int, int, int, bytes]] = []
    for z in range(PRERENDER_ZOOM + 1):
        if ext is None:
            break
        # a tile draws the zones that meet it grown by its buffer: grow the extent as much (a
        # degree of longitude is at least as long as a degree of latitude on the map)
        pad = 360.0 / (1 << z) * BUFFER / EXTENT * 1.01
        w, s, e, n = ext["bbox"]
        bbox = (max(w - pad, -180.0), max(s - pad, -_MAX_LAT), min(e + pad, 180.0), min(n + pad, _MAX_LAT))
        for t in TMS.tiles(*bbox, [z]):
            body = _render(store, kind, TileRef(z, t.x, t.y), None, True)
            rendered += 1
            if body:
                batch.append((z, t.x, t.y, body))
                kept, size = kept + 1, size + len(body)
            if len(batch) >= PRERENDER_BATCH:
                store.add_zone_tiles(lv_id, batch)
                batch = []
    if batch:
        store.add_zone_tiles(lv_id, batch)
    complete = store.zone_tiles_written(lv_id, PRERENDER_ZOOM, ZONE_TILE_RULES, kept)
    return {
        "layer_version_id": lv_id,
        "kind": kind,
        "rendered": rendered,
        "tiles": kept,
        "bytes": size,
        "complete": complete,  # False: a run started meanwhile cleared them (it writes them again)
    }


def prerender_missing(store: Store) -> list[dict]:
    """Pre-render the zone tiles of the current layer versions that have none by these rules
    (a store upgraded from before them, a load cut short, a newer redline): what was written."""
    return [
        done
        for kind in ZONE_KINDS
        if store.zone_tile(kind, 0, 0, 0, ZONE_TILE_RULES) is None
        and (done := prerender_zone_tiles(store, kind)) is not None
    ]


def _thinned_here(tile: TileRef, flt: FlagFilter | None) -> bool:
    """Flag points thinned by the engine (:class:`FlagPoints`): every point zoom, unless a
    CQL2 filter asks for the store's SQL."""
    return tile.z < FLAG_POINT_ZOOM and (flt is None or flt.cql is None)


def _render(
    store: Store, collection: str, tile: TileRef, flt: FlagFilter | None, in_database: bool, version=None
) -> bytes:
    if collection == "flags" and _thinned_here(tile, flt):
        return encode(collection, flag_features(store, tile, flt, version))
    built = store.vector_tile(collection, spec(tile), flt) if in_database else None  # PostGIS: ST_AsMVT
    if built is not None:
        return built
    features = (
        flag_features(store, tile, flt, version)
        if collection == "flags"
        else zone_features(store, collection, tile, flt.cql if flt is not None else None)
    )
    return encode(collection, features)


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
