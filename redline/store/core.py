"""The SQL both stores share: everything that is not spatial, written once.

:class:`SQLStore` implements the :class:`~redline.store.base.Store` interface with SQLAlchemy
Core statements over the tables of :mod:`redline.store.schema`. A statement is built and
compiled once per backend (dialect) and shape (which filters, which columns), then run on
the backend's own DB-API connection, so there is no per-call compilation and no ORM.

A backend (sqlite.py, postgis.py) supplies only what differs: its connection and how a
statement runs on it (:meth:`_execute`, :meth:`_executemany`), the outermost transaction
and its write lock (:meth:`_outermost`), how a geometry comes back (:meth:`_wkb`), the spatial
conditions (:meth:`_spatial`, :meth:`_spatial_params`; :meth:`_intersects` for a CQL2
S_INTERSECTS; :meth:`_bounds`, each row's bounding box, for extents and tile points), the
spatial index upkeep (:meth:`_indexed`, :meth:`_zones_indexed`) and, where the database can,
vector tiles built in it (:meth:`vector_tile`; PostGIS: ST_AsMVT).

CQL2 filters (``FlagFilter.cql``, ``zones(cql=...)``) become SQLAlchemy conditions with bound
literals in :mod:`redline.store.cql`, once for both backends; statements that carry one are
compiled per request, not kept.

Values cross the boundary as the store interface says: dates and timestamps as ISO text,
JSON columns as Python objects (encoded and decoded here, once), geometries as shapely
objects in lon/lat (bound as WKB).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from datetime import date, datetime

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect

from ..accesslist import AccessListReport
from ..clock import now
from ..cql import SORT_RANKS
from ..errors import NotFoundError
from ..layers import LoadReport
from ..model import CONFLICT_FIELDS, FLAG_TILE_FIELDS, HISTORY_FIELDS, SCAN_FIELDS, Zone
from ..vocab import ACCESS_LIST
from . import schema as S
from .base import FLAG_FIELDS, STATS_GROUPS, FlagFilter, Store, ZoneFilter
from .cql import Compiler, order_by

_UPSERT = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
_FILTER_LISTS = ("status", "severity", "activity", "admin_code")


def _value(v):
    return v.isoformat() if isinstance(v, (date, datetime)) else v


def encode(table: sa.Table, row: dict) -> dict:
    """A row as the database takes it: JSON columns as text, dates as ISO text."""
    js = S.JSON_COLUMNS[table.name]
    return {
        k: json.dumps(v, ensure_ascii=False, default=str) if k in js and v is not None else _value(v)
        for k, v in row.items()
    }


def _padded(values) -> list:
    """A list of values for an IN list, padded (with its last value) to a power of two, so
    that few statement shapes cover every length."""
    values = list(values)
    size = 1
    while size < len(values):
        size *= 2
    return values + values[-1:] * (size - len(values))


def _in(column, name: str, n: int):
    return column.in_([bindparam(f"{name}_{i}") for i in range(n)])


def _in_params(name: str, values: list) -> dict:
    return {f"{name}_{i}": v for i, v in enumerate(values)}


def _binds(table: sa.Table, names) -> dict:
    return {n: bindparam(n, type_=table.c[n].type) for n in names}


def _cell_params(spec) -> dict:
    """A vector tile's grid (redline.tiles.TileSpec) as parameters: Web Mercator origin and scale."""
    minx, miny, maxx, maxy = spec.mercator_bounds
    return {
        "mx0": minx,
        "my1": maxy,
        "sx": spec.extent / (maxx - minx),
        "sy": spec.extent / (maxy - miny),
        "cell": spec.cell,
    }


# Zoom bands of the zones' generalised copies (table zone_bands), for vector tiles: a band
# serves the zooms above the previous band's up to its own; zooms above the last one draw
# the zones themselves. One band per zoom up to 9: zoomed out a tile holds thousands of
# zones, and a band shared with higher zooms carries more vertices than the tile draws.
ZONE_BANDS = (6, 7, 8, 9, 11)


def zone_band(z: int) -> int | None:
    """The band that serves zoom ``z`` (None: the zones themselves)."""
    return next((b for b in ZONE_BANDS if z <= b), None)


def generalised_zones(geoms) -> list[tuple[int, int, bytes]]:
    """(index, band, WKB) of the zones' copies for each band: simplified by half a screen
    pixel at the band's highest zoom, what the tile's own simplification drops anyway
    (topology kept, in lon/lat: a Web Mercator pixel spans cos(latitude) as many degrees of
    latitude as of longitude); none for a zone that is under a pixel both ways at that zoom
    (it is under one at every zoom of the band)."""
    geoms = np.asarray(geoms, dtype=object)
    if not len(geoms):
        return []
    b = shapely.bounds(geoms)
    shrink = np.cos(np.radians(np.clip((b[:, 1] + b[:, 3]) / 2, -85.0, 85.0)))
    out = []
    for band in ZONE_BANDS:
        px = 360.0 / (256 << band)  # degrees of longitude per screen pixel
        seen = np.flatnonzero((b[:, 2] - b[:, 0] >= px) | (b[:, 3] - b[:, 1] >= px * shrink))
        simple = shapely.simplify(geoms[seen], px * shrink[seen] / 2, preserve_topology=True)
        ok = ~shapely.is_empty(simple)
        out += [(i, band, g) for i, g in zip(seen[ok].tolist(), shapely.to_wkb(simple[ok]).tolist())]
    return out


class SQLStore(Store):
    """The store interface on SQLAlchemy Core statements; a backend subclasses it."""

    dialect: Dialect  # the backend's, for compiling statements
    _compiled: dict  # (key) -> (sql text, default parameters); one per backend class
    _depth = 0  # nesting of transaction()

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        cls._compiled = {}

    # what a backend supplies -----------------------------------------------------------
    def _execute(self, sql: str, params: dict):
        """Run one statement; a DB-API cursor (``rowcount``, rows by ``_rows``)."""
        raise NotImplementedError

    def _executemany(self, sql: str, rows: list[dict]) -> None:
        raise NotImplementedError

    def _rows(self, cursor) -> list[dict]:
        raise NotImplementedError

    def _outermost(self) -> AbstractContextManager:
        """The outermost transaction, holding the store's write lock."""
        raise NotImplementedError

    def _wkb(self, value) -> bytes | None:
        """A geometry column's value as the driver returns it → WKB."""
        raise NotImplementedError

    def _spatial(self, table: sa.Table, bbox: bool, region: bool) -> list:
        """Conditions on ``table``'s geometry: its bounding box overlaps ``:bbox_*`` (when
        ``bbox``), it intersects ``:region`` exactly (when ``region``)."""
        raise NotImplementedError

    def _spatial_params(self, bbox, region) -> dict:
        raise NotImplementedError

    def _indexed(self, table: sa.Table, row_id: int, geometry, new: bool = True) -> None:
        """A row's geometry was written (``new``: inserted, else updated): keep an index the
        database does not keep itself."""

    def _zones_indexed(self, layer_version_id: int, zones: list[Zone]) -> None:
        """A layer version's zones were inserted (in order)."""

    def _zone_bands(self, layer_version_id: int, geoms: list) -> None:
        """The generalised copies of a layer version's zones (inserted in order), per band."""
        z, zb = S.zones, S.zone_bands
        ids = [
            r["id"]
            for r in self._all(
                "zone_ids",
                lambda: select(z.c.id).where(z.c.layer_version_id == bindparam("lv")).order_by(z.c.id),
                {"lv": layer_version_id},
            )
        ]
        rows = [{"zone_id": ids[i], "band": band, "geom": wkb} for i, band, wkb in generalised_zones(geoms)]
        if rows:
            sql, _ = self._statement(
                "insert_zone_bands", lambda: sa.insert(zb).values(_binds(zb, ("zone_id", "band", "geom"))).inline()
            )
            self._executemany(sql, rows)

    def _zones_loaded(self) -> None:
        """After the transaction that loaded a layer version."""

    def _intersects(self, table: sa.Table, prefix: str) -> list:
        """Conditions: ``table``'s geometry intersects the geometry bound as ``:prefix`` (with
        the parameters of :meth:`_intersects_params`); for CQL2 S_INTERSECTS."""
        raise NotImplementedError

    def _intersects_params(self, table: sa.Table, prefix: str, geom) -> dict:
        raise NotImplementedError

    def _bounds(self, table: sa.Table) -> tuple[list, list]:
        """(joins, (minx, miny, maxx, maxy) expressions) of each row's bounding box."""
        raise NotImplementedError

    # running statements ----------------------------------------------------------------
    def _statement(self, key, build: Callable[[], sa.sql.ClauseElement]) -> tuple[str, dict]:
        if key is None:  # a statement of a shape not worth keeping (a user's CQL2 filter)
            compiled = build().compile(dialect=self.dialect)
            return compiled.string, dict(compiled.params)
        hit = self._compiled.get(key)
        if hit is None:
            compiled = build().compile(dialect=self.dialect)
            hit = self._compiled[key] = (compiled.string, dict(compiled.params))
        return hit

    def _run(self, key, build, params: dict | None = None):
        sql, defaults = self._statement(key, build)
        return self._execute(sql, {**defaults, **params} if params else defaults)

    def _all(self, key, build, params: dict | None = None) -> list[dict]:
        return self._rows(self._run(key, build, params))

    def _first(self, key, build, params: dict | None = None) -> dict | None:
        rows = self._all(key, build, params)
        return rows[0] if rows else None

    def _one(self, key, build, params: dict | None = None) -> dict:
        """The row of a statement that always yields one (an aggregate)."""
        row = self._first(key, build, params)
        assert row is not None
        return row

    def _insert(self, table: sa.Table, row: dict, geometry=None, returning: bool = True):
        """Insert ``row`` (and the geometry, if the table has one and it is given); its id."""
        row = encode(table, row)
        geom = S.GEOMETRY_COLUMN.get(table.name)
        if geom is not None and geometry is not None:
            row[geom] = shapely.to_wkb(geometry)
        cols = tuple(row)

        def build():
            stmt = sa.insert(table).values(_binds(table, cols))
            return stmt.returning(table.c.id) if returning else stmt.inline()

        cur = self._run(("insert", table.name, cols, returning), build, row)
        return self._rows(cur)[0]["id"] if returning else None

    def _update(self, table: sa.Table, key: str, key_value, fields: dict, geometry=None) -> int:
        """Update ``fields`` (and the geometry) of the row whose ``key`` is ``key_value``; rows changed."""
        fields = encode(table, fields)
        if geometry is not None:
            fields[S.GEOMETRY_COLUMN[table.name]] = shapely.to_wkb(geometry)
        cols = tuple(fields)

        def build():
            return sa.update(table).where(table.c[key] == bindparam("_key")).values(_binds(table, cols))

        return self._run(("update", table.name, key, cols), build, {**fields, "_key": key_value}).rowcount

    def _decoded(self, table: sa.Table, rows: list[dict], geometry: str | None = None) -> list[dict]:
        """Rows with their JSON columns decoded and, with ``geometry``, the table's geometry
        column moved to that key (last) as shapely objects."""
        js = [c for c in S.JSON_COLUMNS[table.name] if rows and c in rows[0]]
        for r in rows:
            for c in js:
                if r[c] is not None:
                    r[c] = json.loads(r[c])
        if geometry is not None and rows:
            column = S.GEOMETRY_COLUMN[table.name]
            for r, g in zip(rows, shapely.from_wkb([self._wkb(r.pop(column)) for r in rows])):
                r[geometry] = g
        return rows

    # lifecycle -------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[SQLStore]:
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with self._outermost():
                yield self
        finally:
            self._depth = 0

    # layers ----------------------------------------------------------------------------
    def _new_layer_version(self, kind: str, source: str, sha256: str, source_crs: str | None, report: dict):
        """A new version row of layer ``kind`` (in the caller's transaction): (id, version)."""
        lv = S.layer_versions
        version = self._one(
            "next_layer_version",
            lambda: select((func.coalesce(func.max(lv.c.version), 0) + 1).label("v")).where(
                lv.c.kind == bindparam("kind")
            ),
            {"kind": kind},
        )["v"]
        row = {
            "kind": kind,
            "version": version,
            "source": source,
            "source_sha256": sha256,
            "source_crs": source_crs,
            "loaded_at": now(),
            "report": report,
        }
        return self._insert(lv, row), version

    def add_layer_version(self, report: LoadReport) -> dict:
        z = S.zones
        with self.transaction():
            lv_id, version = self._new_layer_version(
                report.kind,
                report.source,
                report.sha256,
                report.source_crs,
                {**report.summary(), "field_map": report.field_map},
            )
            cols = (
                "layer_version_id",
                "kind",
                "name",
                "regime",
                "code",
                "attrs",
                "valid_from",
                "valid_to",
                "activity",
                "area_ha",
                "geom",
            )
            sql, _ = self._statement("insert_zones", lambda: sa.insert(z).values(_binds(z, cols)).inline())
            self._executemany(
                sql,
                [
                    encode(
                        z,
                        {
                            "layer_version_id": lv_id,
                            "kind": zone.kind,
                            "name": zone.name,
                            "regime": zone.regime,
                            "code": zone.code,
                            "attrs": zone.attrs,
                            "valid_from": zone.valid_from,
                            "valid_to": zone.valid_to,
                            "activity": zone.activity,
                            "area_ha": zone.area_ha,
                            "geom": shapely.to_wkb(zone.geometry),
                        },
                    )
                    for zone in report.zones
                ],
            )
            self._zones_indexed(lv_id, report.zones)
            self._zone_bands(lv_id, [zone.geometry for zone in report.zones])  # for vector tiles
        self._zones_loaded()
        return {"id": lv_id, "kind": report.kind, "version": version}

    # pre-rendered zone tiles (redline.tiles.prerender_zone_tiles) ------------------------
    def zone_tile(self, kind: str, z: int, x: int, y: int, rules: int) -> bytes | None:
        """The pre-rendered tile of the current ``kind`` version (``b""``: known to be empty),
        or None when that version's tiles up to ``z`` by ``rules`` are not all written."""
        t, s, lv = S.zone_tiles, S.zone_tile_sets, S.layer_versions

        def build():
            current = select(func.max(lv.c.id)).where(lv.c.kind == bindparam("kind")).scalar_subquery()
            at = (t.c.z == bindparam("z")) & (t.c.x == bindparam("x")) & (t.c.y == bindparam("y"))
            return (
                select(s.c.tiles, t.c.body)
                .select_from(s.outerjoin(t, (t.c.layer_version_id == s.c.layer_version_id) & at))
                .where(s.c.layer_version_id == current, s.c.rules == bindparam("rules"), s.c.max_zoom >= bindparam("z"))
            )

        row = self._first("zone_tile", build, {"kind": kind, "z": z, "x": x, "y": y, "rules": rules})
        if row is None:
            return None
        return b"" if row["body"] is None else bytes(row["body"])

    def clear_zone_tiles(self, kind: str) -> None:
        """Forget the pre-rendered tiles of every version of ``kind`` (one about to be written
        replaces them; only the current version's are ever served)."""
        lv = S.layer_versions
        with self.transaction():
            for table in (S.zone_tile_sets, S.zone_tiles):  # the set first: nothing is served half-deleted
                self._run(
                    ("clear_zone_tiles", table.name),
                    lambda table=table: sa.delete(table).where(
                        table.c.layer_version_id.in_(select(lv.c.id).where(lv.c.kind == bindparam("kind")))
                    ),
                    {"kind": kind},
                )

    def add_zone_tiles(self, layer_version_id: int, tiles: list[tuple[int, int, int, bytes]]) -> None:
        """Write pre-rendered tiles ((z, x, y, body), non-empty), in a transaction of their own."""
        t = S.zone_tiles

        def build():
            stmt = _UPSERT[self.dialect.name](t).values(_binds(t, ("layer_version_id", "z", "x", "y", "body")))
            return stmt.on_conflict_do_update(index_elements=list(t.primary_key), set_={"body": stmt.excluded.body})

        sql, _ = self._statement("add_zone_tiles", build)
        with self.transaction():
            self._executemany(
                sql, [{"layer_version_id": layer_version_id, "z": z, "x": x, "y": y, "body": b} for z, x, y, b in tiles]
            )

    def zone_tiles_written(self, layer_version_id: int, max_zoom: int, rules: int, tiles: int) -> bool:
        """The ``tiles`` (non-empty) tiles of ``layer_version_id`` up to ``max_zoom`` are
        written: from now on they are served, and a tile without a row is empty. False (and
        nothing marked) when they are not all there: another run cleared them meanwhile."""
        s, t = S.zone_tile_sets, S.zone_tiles
        row = {"layer_version_id": layer_version_id, "max_zoom": max_zoom, "rules": rules, "tiles": tiles}

        def build():
            stmt = _UPSERT[self.dialect.name](s).values(_binds(s, (*row, "written_at")))
            return stmt.on_conflict_do_update(
                index_elements=[s.c.layer_version_id], set_={k: stmt.excluded[k] for k in (*row, "written_at")}
            )

        with self.transaction():  # under the write lock: no clear_zone_tiles in between
            there = self._one(
                "zone_tiles_count",
                lambda: select(func.count().label("n")).select_from(t).where(t.c.layer_version_id == bindparam("lv")),
                {"lv": layer_version_id},
            )["n"]
            if there != tiles:
                return False
            self._run("zone_tiles_written", build, {**row, "written_at": now()})
        return True

    def add_access_list(self, report: AccessListReport) -> dict:
        a = S.access_entries
        cols = ("layer_version_id", "unit_code", "activity", "activity_text", "decision", "condition", "source_row")
        with self.transaction():
            lv_id, version = self._new_layer_version(
                report.kind, report.source, report.sha256, None, {**report.summary(), "field_map": report.field_map}
            )
            sql, _ = self._statement("insert_access_entries", lambda: sa.insert(a).values(_binds(a, cols)).inline())
            self._executemany(
                sql,
                [
                    {
                        "layer_version_id": lv_id,
                        "unit_code": e.unit_code,
                        "activity": e.activity,
                        "activity_text": e.activity_text,
                        "decision": e.decision,
                        "condition": e.condition,
                        "source_row": e.source_row,
                    }
                    for e in report.entries
                ],
            )
        return {"id": lv_id, "kind": report.kind, "version": version}

    def access_entries(self, unit_codes) -> list[dict]:
        current = self.layer_versions(kind=ACCESS_LIST)
        codes = sorted({str(c) for c in unit_codes if c is not None})
        if not current or not codes:
            return []
        codes = _padded(codes)
        a = S.access_entries
        rows = self._all(
            ("access_entries", len(codes)),
            lambda: (
                select(a)
                .where(a.c.layer_version_id == bindparam("lv"), _in(a.c.unit_code, "code", len(codes)))
                .order_by(a.c.source_row, a.c.id)
            ),
            {"lv": current[0]["id"], **_in_params("code", codes)},
        )
        for r in rows:
            r["list_version"] = current[0]["version"]
        return rows

    def layer_versions(self, kind=None, current_only=True) -> list[dict]:
        lv = S.layer_versions

        def build():
            stmt = select(lv)
            if current_only:
                stmt = stmt.where(lv.c.id.in_(select(func.max(lv.c.id)).group_by(lv.c.kind)))
            return stmt.order_by(S.Binary(lv.c.kind), lv.c.version)

        rows = self._decoded(lv, self._all(("layer_versions", current_only), build))
        return [r for r in rows if kind is None or r["kind"] == kind]

    def zone_refs(self, zone_ids) -> dict[int, str]:
        ids = sorted({int(i) for i in zone_ids if i is not None})
        if not ids:
            return {}
        ids = _padded(ids)
        z = S.zones
        rows = self._all(
            ("zone_refs", len(ids)),
            lambda: select(z.c.id, func.coalesce(z.c.code, z.c.name).label("ref")).where(_in(z.c.id, "id", len(ids))),
            _in_params("id", ids),
        )
        return {r["id"]: r["ref"] for r in rows}

    def zones(self, kinds, bbox=None, region=None, cql=None) -> list[Zone]:
        current = {r["kind"]: r for r in self.layer_versions()}
        ids = [current[k]["id"] for k in kinds if k in current]
        if not ids:
            return []
        z, lv = S.zones, S.layer_versions
        has_bbox, has_region = bbox is not None, region is not None
        where, cql_params = Compiler(self, z).compile(cql) if cql is not None else (None, {})

        def build():
            return (
                select(z, lv.c.version)
                .join(lv, lv.c.id == z.c.layer_version_id)
                .where(
                    _in(z.c.layer_version_id, "lv", len(ids)),
                    *self._spatial(z, has_bbox, has_region),
                    *([where] if where is not None else []),
                )
                .order_by(z.c.id)
            )

        rows = self._all(
            None if cql is not None else ("zones", len(ids), has_bbox, has_region),
            build,
            {**_in_params("lv", ids), **self._spatial_params(bbox, region), **cql_params},
        )
        return self._zone_records(rows)

    def _zone_records(self, rows: list[dict]) -> list[Zone]:
        """Zone rows (with their layer ``version``) as records, geometries parsed at once."""
        out = []
        for r in self._decoded(S.zones, rows, geometry="geometry"):
            zone = Zone(
                r["kind"],
                r["name"],
                r["regime"],
                r["geometry"],
                r["code"],
                r["attrs"],
                date.fromisoformat(r["valid_from"]) if r["valid_from"] else None,
                date.fromisoformat(r["valid_to"]) if r["valid_to"] else None,
                r["activity"],
                r["id"],
                r["layer_version_id"],
                r["area_ha"],
            )
            zone.attrs["layer_version"] = r["version"]
            out.append(zone)
        return out

    def _current_version(self, kind: str) -> int | None:
        return next((r["id"] for r in self.layer_versions() if r["kind"] == kind), None)

    def zone(self, kind: str, zone_id: int) -> Zone:
        lv_id = self._current_version(kind)
        z, lv = S.zones, S.layer_versions
        rows = (
            self._all(
                "zone",
                lambda: (
                    select(z, lv.c.version)
                    .join(lv, lv.c.id == z.c.layer_version_id)
                    .where(z.c.id == bindparam("id"), z.c.layer_version_id == bindparam("lv"))
                ),
                {"id": zone_id, "lv": lv_id},
            )
            if lv_id is not None
            else []
        )
        if not rows:
            raise NotFoundError(f"{kind} feature {zone_id} does not exist")
        return self._zone_records(rows)[0]

    def _zone_where(self, flt: ZoneFilter, paged: bool) -> tuple[tuple | None, Callable[[], list], dict]:
        """A zone filter on the current version ``:lv`` as (shape, conditions builder, parameters)."""
        z = S.zones
        has_region, after = flt.region is not None, paged and flt.after_id is not None
        where, cql_params = Compiler(self, z).compile(flt.cql) if flt.cql is not None else (None, {})

        def conditions() -> list:
            out = [z.c.layer_version_id == bindparam("lv"), *self._spatial(z, False, has_region)]
            if after:
                out.append(z.c.id > bindparam("after_id"))
            return out + ([where] if where is not None else [])

        params = {**self._spatial_params(None, flt.region), "after_id": flt.after_id, **cql_params}
        return (None if where is not None else (has_region, after)), conditions, params

    def zone_page(self, kind: str, flt: ZoneFilter) -> list[Zone]:
        lv_id = self._current_version(kind)
        if lv_id is None:
            return []
        z, lv = S.zones, S.layer_versions
        shape, conditions, params = self._zone_where(flt, paged=True)
        limit, offset, sortby = flt.limit is not None, bool(flt.offset), tuple(flt.sortby)

        def build():
            stmt = (
                select(z, lv.c.version)
                .join(lv, lv.c.id == z.c.layer_version_id)
                .where(*conditions())
                .order_by(*order_by(z, sortby, binary=True))
            )
            if limit:
                stmt = stmt.limit(bindparam("limit", type_=sa.Integer))
            return stmt.offset(bindparam("offset", type_=sa.Integer)) if offset else stmt

        rows = self._all(
            None if shape is None else ("zone_page", shape, limit, offset, sortby),
            build,
            {**params, "lv": lv_id, "limit": flt.limit, "offset": flt.offset if offset else None},
        )
        return self._zone_records(rows)

    def count_zones(self, kind: str, flt: ZoneFilter) -> int:
        lv_id = self._current_version(kind)
        if lv_id is None:
            return 0
        shape, conditions, params = self._zone_where(flt, paged=False)
        return self._one(
            None if shape is None else ("count_zones", shape),
            lambda: select(func.count().label("n")).select_from(S.zones).where(*conditions()),
            {**params, "lv": lv_id},
        )["n"]

    def tile_zones(self, kind: str, bbox, band: int | None = None, cql=None) -> list[dict]:
        current = [r for r in self.layer_versions() if r["kind"] == kind]
        if not current:
            return []
        z, zb = S.zones, S.zone_bands
        where, cql_params = Compiler(self, z).compile(cql) if cql is not None else (None, {})

        def build():
            geom = z.c.geom if band is None else zb.c.geom
            stmt = select(z.c.id, z.c.name, z.c.regime, z.c.code, z.c.kind, geom.label("geom"))
            if band is not None:
                stmt = stmt.select_from(z.join(zb, (zb.c.zone_id == z.c.id) & (zb.c.band == bindparam("band"))))
            return stmt.where(
                z.c.layer_version_id == bindparam("lv"),
                *self._spatial(z, True, False),
                *([where] if where is not None else []),
            ).order_by(z.c.id)

        rows = self._all(
            None if cql is not None else ("tile_zones", band is not None),
            build,
            {"lv": current[0]["id"], "band": band, **self._spatial_params(bbox, None), **cql_params},
        )
        return self._decoded(z, rows, geometry="geometry")

    def extent(self, collection: str, flt: FlagFilter | None = None) -> dict | None:
        if collection == "flags":
            table = S.flags
            shape, conditions, params = self._where(flt)
            start, end = table.c.first_seen, table.c.last_seen
        else:
            current = [r for r in self.layer_versions() if r["kind"] == collection]
            if not current:
                return None
            table = S.zones
            shape, params = ("zones",), {"lv": current[0]["id"]}
            start, end = table.c.valid_from, table.c.valid_to

            def conditions() -> list:
                return [S.zones.c.layer_version_id == bindparam("lv")]

        joins, bounds = self._bounds(table)

        def build():
            stmt = select(
                *[func.min(b).label(n) for b, n in zip(bounds[:2], ("minx", "miny"))],
                *[func.max(b).label(n) for b, n in zip(bounds[2:], ("maxx", "maxy"))],
                func.min(start).label("start"),
                func.max(end).label("end"),
                func.count().label("n"),
            )
            stmt = stmt.select_from(table)
            for t, on in joins:
                stmt = stmt.join(t, on)
            return stmt.where(*conditions())

        row = self._first(None if shape is None else ("extent", table.name, shape), build, params)
        if not row or not row["n"]:
            return None
        interval = (row["start"], row["end"]) if row["start"] or row["end"] else None
        return {"bbox": (row["minx"], row["miny"], row["maxx"], row["maxy"]), "interval": interval}

    def change_stamp(self) -> list:
        def build():
            return select(
                *[
                    select(func.max(t.c.id)).scalar_subquery().label(t.name)
                    for t in (S.layer_versions, S.scans, S.flags, S.audit)
                ]
            )

        row = self._one("change_stamp", build)
        return [row[t] for t in ("layer_versions", "scans", "flags", "audit")]

    # scans -----------------------------------------------------------------------------
    def scan_by_checksum(self, checksum: str) -> dict | None:
        s = S.scans
        rows = self._all(
            "scan_by_checksum",
            lambda: select(*[c for c in s.c if c.name != "footprint"]).where(s.c.checksum == bindparam("checksum")),
            {"checksum": checksum},
        )
        return self._decoded(s, rows)[0] if rows else None

    _SCAN_COLUMNS = SCAN_FIELDS[1:]  # the record's fields but the id

    def insert_scan(self, scan: dict, footprint) -> int:
        with self.transaction():
            sid = self._insert(S.scans, {c: scan[c] for c in self._SCAN_COLUMNS}, footprint)
            if footprint is not None:
                self._indexed(S.scans, sid, footprint)
        return sid

    def scans(self, bbox=None, since=None, until=None, region=None) -> list[dict]:
        s = S.scans
        shape = (bbox is not None, region is not None, bool(since), bool(until))

        def build():
            stmt = select(*[s.c[n] for n in SCAN_FIELDS], s.c.footprint)
            stmt = stmt.where(s.c.state == "done", *self._spatial(s, shape[0], shape[1]))
            if since:
                stmt = stmt.where(s.c.acquired_after >= bindparam("since"))
            if until:
                stmt = stmt.where(s.c.acquired_after <= bindparam("until"))
            return stmt.order_by(s.c.acquired_after, s.c.id)

        rows = self._all(
            ("scans", *shape),
            build,
            {**self._spatial_params(bbox, region), "since": _value(since), "until": _value(until)},
        )
        return self._decoded(s, rows, geometry="footprint")

    # flags -----------------------------------------------------------------------------
    def _where(self, flt: FlagFilter | None) -> tuple[tuple | None, Callable[[], list], dict]:
        """A flag filter as (shape, conditions builder, parameters)."""
        if flt is None:
            return (), list, {}
        f = S.flags
        lists = {c: _padded(getattr(flt, c)) if getattr(flt, c) else [] for c in _FILTER_LISTS}
        shape = (
            flt.bbox is not None,
            flt.region is not None,
            *(len(v) for v in lists.values()),
            bool(flt.since),
            bool(flt.until),
            flt.after_id is not None,
        )
        where, cql_params = Compiler(self, f).compile(flt.cql) if flt.cql is not None else (None, {})
        spatial = (flt.bbox is not None, flt.region is not None)  # shape[:2]

        def conditions() -> list:
            out = self._spatial(f, *spatial)
            out += [_in(f.c[c], c, len(v)) for c, v in lists.items() if v]
            if flt.since:
                out.append(f.c.last_seen >= bindparam("since"))
            if flt.until:
                out.append(f.c.first_seen <= bindparam("until"))
            if flt.after_id is not None:
                out.append(f.c.id > bindparam("after_id"))
            if where is not None:
                out.append(where)
            return out

        params = self._spatial_params(flt.bbox, flt.region)
        for c, v in lists.items():
            params.update(_in_params(c, v))
        params.update(since=_value(flt.since), until=_value(flt.until), after_id=flt.after_id, **cql_params)
        return (None if where is not None else shape), conditions, params  # a user's filter: not kept

    def flags(self, flt=None, with_geometry=True) -> list[dict]:
        f = S.flags
        shape, conditions, params = self._where(flt)
        limit = flt is not None and flt.limit is not None
        offset = flt is not None and bool(flt.offset)
        sortby = tuple(flt.sortby) if flt is not None and flt.sortby else ()

        def build():
            stmt = select(*[f.c[c] for c in FLAG_FIELDS], *([f.c.geom] if with_geometry else []))
            stmt = stmt.where(*conditions()).order_by(*order_by(f, sortby))
            if limit:
                stmt = stmt.limit(bindparam("limit", type_=sa.Integer))
            return stmt.offset(bindparam("offset", type_=sa.Integer)) if offset else stmt

        key = None if shape is None else ("flags", shape, with_geometry, limit, offset, sortby)
        rows = self._all(
            key,
            build,
            {**params, "limit": int(flt.limit) if limit else None, "offset": int(flt.offset) if offset else None},
        )
        return self._decoded(f, rows, geometry="geometry" if with_geometry else None)

    _R = 6378137.0  # the Web Mercator sphere

    def _cells(self, spec, conditions):
        """The select of :meth:`flag_cells` (PostGIS wraps it in ST_AsMVT)."""
        f = S.flags
        joins, (minx, miny, maxx, maxy) = self._bounds(f)
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        px = func.round(
            (func.radians(cx) * self._R - bindparam("mx0", type_=sa.Float)) * bindparam("sx", type_=sa.Float)
        )
        py = func.round(
            (bindparam("my1", type_=sa.Float) - func.ln(func.tan(func.pi() / 4 + func.radians(cy) / 2)) * self._R)
            * bindparam("sy", type_=sa.Float)
        )
        t = select(f.c.id, f.c.severity, f.c.last_seen, px.label("px"), py.label("py")).select_from(f)
        for table, on in joins:
            t = t.join(table, on)
        t = t.where(*conditions()).subquery("t")
        cell = bindparam("cell", type_=sa.Float)
        part = [func.floor(t.c.px / cell), func.floor(t.c.py / cell)]
        rank = sa.case({v: i for i, v in enumerate(SORT_RANKS["severity"])}, value=t.c.severity, else_=-1)
        lo, hi = -spec.buffer, spec.extent + spec.buffer
        c = (
            select(
                t.c.id,
                t.c.px,
                t.c.py,
                func.row_number()
                .over(partition_by=part, order_by=[rank.desc(), t.c.last_seen.is_(None), t.c.last_seen.desc(), t.c.id])
                .label("rn"),
                func.count().over(partition_by=part).label("pixel_flags"),
            )
            .where(t.c.px.between(lo, hi), t.c.py.between(lo, hi))
            .subquery("c")
        )
        return f, c

    def flag_cells(self, flt, spec) -> list[dict]:
        flt = replace(
            flt or FlagFilter(), bbox=spec.lonlat_bounds, region=None, limit=None, after_id=None, offset=None, sortby=()
        )
        shape, conditions, params = self._where(flt)

        def build():
            f, c = self._cells(spec, conditions)
            return (
                select(*[f.c[k] for k in FLAG_FIELDS if k != "layer_versions"], c.c.px, c.c.py, c.c.pixel_flags)
                .select_from(c.join(f, f.c.id == c.c.id))
                .where(c.c.rn == 1)
                .order_by(f.c.id)
            )

        return self._all(None if shape is None else ("flag_cells", shape), build, {**params, **_cell_params(spec)})

    def _flag_points(self):
        """The select of :meth:`flag_points` (every flag)."""
        f = S.flags
        joins, (minx, miny, maxx, maxy) = self._bounds(f)
        stmt = select(
            *[f.c[k] for k in FLAG_TILE_FIELDS], ((minx + maxx) / 2).label("cx"), ((miny + maxy) / 2).label("cy")
        ).select_from(f)
        for table, on in joins:
            stmt = stmt.join(table, on)
        return stmt

    def flag_points(self) -> dict[str, Sequence]:
        rows = self._all("flag_points", self._flag_points)
        return {k: [r[k] for r in rows] for k in (*FLAG_TILE_FIELDS, "cx", "cy")}

    def flag_point_changes(self, since: list, stamp: list) -> dict[str, Sequence] | None:
        """What :meth:`flag_points` gives, for the flags changed after the :meth:`change_stamp`
        ``since`` only (as they are now): those inserted or audited since (every change to a
        flag is audited: what change_stamp counts on). None where more than flags changed
        between ``since`` and the later stamp ``stamp``, a layer version or a scan (load every
        flag), or ``since`` is no earlier stamp of this store."""
        # stamps: (layer versions, scans, flags, audit), the latest ids
        if since[:2] != stamp[:2] or any((a or 0) > (b or 0) for a, b in zip(since, stamp, strict=True)):
            return None
        f, a = S.flags, S.audit

        def build():
            changed = sa.union(
                select(a.c.flag_id).where(a.c.id > bindparam("audit")),
                select(f.c.id).where(f.c.id > bindparam("flags")),
            )
            return self._flag_points().where(f.c.id.in_(changed))

        rows = self._all("flag_point_changes", build, {"flags": since[2] or 0, "audit": since[3] or 0})
        return {k: [r[k] for r in rows] for k in (*FLAG_TILE_FIELDS, "cx", "cy")}

    def count_flags(self, flt=None) -> int:
        shape, conditions, params = self._where(flt)
        return self._one(
            None if shape is None else ("count_flags", shape),
            lambda: select(func.count().label("n")).select_from(S.flags).where(*conditions()),
            params,
        )["n"]

    def flag(self, flag_id: int) -> dict:
        f = S.flags
        rows = self._all("flag", lambda: select(f).where(f.c.id == bindparam("id")), {"id": flag_id})
        if not rows:
            raise NotFoundError(f"flag {flag_id} does not exist")
        return self._decoded(f, rows, geometry="geometry")[0]

    def insert_flag(self, flag: dict, geometry) -> int:
        flag = dict(flag)
        flag.setdefault("created_at", now())
        flag.setdefault("updated_at", flag["created_at"])
        with self.transaction():
            fid = self._insert(S.flags, flag, geometry)
            self._indexed(S.flags, fid, geometry)
        return fid

    def update_flag(self, flag_id: int, fields: dict, geometry=None) -> None:
        with self.transaction():
            if self._update(S.flags, "id", flag_id, {**fields, "updated_at": now()}, geometry) == 0:
                raise NotFoundError(f"flag {flag_id} does not exist")
            if geometry is not None:
                self._indexed(S.flags, flag_id, geometry, new=False)

    def add_observation(self, obs: dict, geometry) -> int:
        return self._insert(S.observations, obs, geometry)

    def observations(self, flag_id: int) -> list[dict]:
        o, s = S.observations, S.scans
        rows = self._all(
            "observations",
            lambda: (
                select(o, s.c.product_id, s.c.sensor)
                .outerjoin(s, s.c.id == o.c.scan_id)  # leads and ground reports have no scan
                .where(o.c.flag_id == bindparam("flag_id"))
                .order_by(o.c.observed_on, o.c.id)
            ),
            {"flag_id": flag_id},
        )
        return self._decoded(o, rows, geometry="geometry")

    def replace_conflicts(self, flag_id: int, conflicts: list[dict]) -> None:
        c = S.conflicts
        with self.transaction():
            self._run(
                "delete_conflicts",
                lambda: sa.delete(c).where(c.c.flag_id == bindparam("flag_id")),
                {"flag_id": flag_id},
            )
            for row in conflicts:
                self._insert(c, {"flag_id": flag_id, **row}, returning=False)

    def conflicts(self, flag_id: int) -> list[dict]:
        c = S.conflicts
        return self._all(
            "conflicts",
            lambda: (
                select(*[c.c[n] for n in CONFLICT_FIELDS])
                .where(c.c.flag_id == bindparam("flag_id"))
                .order_by(c.c.overlap_ha.desc(), c.c.id)
            ),
            {"flag_id": flag_id},
        )

    def audit(self, flag_id, actor, action, detail) -> None:
        self._insert(
            S.audit,
            {"flag_id": flag_id, "at": now(), "actor": actor, "action": action, "detail": detail},
            returning=False,
        )

    def history(self, flag_id: int) -> list[dict]:
        a = S.audit
        return self._decoded(
            a,
            self._all(
                "history",
                lambda: (
                    select(*[a.c[n] for n in HISTORY_FIELDS])
                    .where(a.c.flag_id == bindparam("flag_id"))
                    .order_by(a.c.id)
                ),
                {"flag_id": flag_id},
            ),
        )

    # statistics ------------------------------------------------------------------------
    def stats(self, group_by: str, flt=None) -> list[dict]:
        f = S.flags
        cols = STATS_GROUPS[group_by]
        shape, conditions, params = self._where(flt)

        def build():
            exprs = [S.YearMonth(f.c.first_seen, sa.Text()) if c == "month" else f.c[c] for c in cols]
            # SQLite's order: binary collation, NULLs first
            return (
                select(
                    *[e.label(c) for e, c in zip(exprs, cols)],
                    func.count().label("count"),
                    func.sum(f.c.area_ha).label("area_ha"),
                )
                .where(*conditions())
                .group_by(*exprs)
                .order_by(sa.desc(sa.literal_column("count")), *[S.Binary(e).nulls_first() for e in exprs])
            )

        rows = self._all(None if shape is None else ("stats", group_by, shape), build, params)
        for d in rows:
            d["area_ha"] = round(d["area_ha"] or 0.0, 4)
            d["area_mu"] = round(d["area_ha"] * 15, 2)
        return rows

    # access tokens ---------------------------------------------------------------------
    def add_token(self, name, role, jurisdiction, token_hash) -> int:
        with self.transaction():
            return self._insert(
                S.tokens,
                {
                    "name": name,
                    "role": role,
                    "jurisdiction": list(jurisdiction),
                    "token_hash": token_hash,
                    "created_at": now(),
                },
            )

    def _tokens(self, key, build, params=None) -> list[dict]:
        rows = self._decoded(S.tokens, self._all(key, build, params))
        for r in rows:
            r.pop("token_hash", None)
        return rows

    def token_by_hash(self, token_hash: str) -> dict | None:
        t = S.tokens
        rows = self._tokens(
            "token_by_hash",
            lambda: select(t).where(t.c.token_hash == bindparam("token_hash"), t.c.revoked_at.is_(None)),
            {"token_hash": token_hash},
        )
        return rows[0] if rows else None

    def tokens(self) -> list[dict]:
        return self._tokens("tokens", lambda: select(S.tokens).order_by(S.tokens.c.id))

    def revoke_token(self, token_id: int) -> None:
        with self.transaction():
            if self._update(S.tokens, "id", token_id, {"revoked_at": now()}) == 0:
                raise NotFoundError(f"token {token_id} does not exist")

    # field evidence --------------------------------------------------------------------
    def add_evidence(self, record: dict) -> int:
        with self.transaction():
            return self._insert(S.evidence, record)

    def evidence(self, flag_id: int) -> list[dict]:
        e = S.evidence
        return self._all(
            "evidence",
            lambda: select(e).where(e.c.flag_id == bindparam("flag_id")).order_by(e.c.id),
            {"flag_id": flag_id},
        )

    def evidence_item(self, evidence_id: int) -> dict:
        e = S.evidence
        row = self._first("evidence_item", lambda: select(e).where(e.c.id == bindparam("id")), {"id": evidence_id})
        if row is None:
            raise NotFoundError(f"evidence {evidence_id} does not exist")
        return row

    # jobs ------------------------------------------------------------------------------
    def add_job(self, job: dict) -> None:
        with self.transaction():
            self._insert(
                S.jobs,
                {**job, "request": job.get("request", {}), "created_at": now(), "updated_at": now()},
                returning=False,
            )

    def update_job(self, job_id: str, fields: dict) -> None:
        with self.transaction():
            self._update(S.jobs, "id", job_id, {**fields, "updated_at": now()})

    def touch_jobs(self, job_ids: list[str]) -> None:
        """Renew the lease of jobs this process runs: their ``updated_at`` is now."""
        at = now()
        with self.transaction():
            for job_id in job_ids:  # a handful: the jobs one server runs at a time
                self._update(S.jobs, "id", job_id, {"updated_at": at})

    def expire_jobs(self, before: str, message: str) -> list[str]:
        """Fail the unfinished jobs (accepted or running) whose lease was last renewed before
        ``before``: the process that ran them is gone. Returns their ids."""
        j = S.jobs
        unfinished = (j.c.state == "accepted") | (j.c.state == "running")
        stale = unfinished & (j.c.updated_at < bindparam("before", type_=S.TIMESTAMP))
        with self.transaction():
            rows = self._all("stale_jobs", lambda: select(j.c.id).where(stale), {"before": before})
            ids = [r["id"] for r in rows]
            for job_id in ids:
                self._update(S.jobs, "id", job_id, {"state": "failed", "message": message, "updated_at": now()})
        return ids

    def job(self, job_id: str) -> dict:
        j = S.jobs
        rows = self._all("job", lambda: select(j).where(j.c.id == bindparam("id")), {"id": job_id})
        if not rows:
            raise NotFoundError(f"job {job_id} does not exist")
        return self._decoded(j, rows)[0]

    def jobs(self, actor: str | None = None, limit: int = 100) -> list[dict]:
        j = S.jobs

        def build():
            stmt = select(j)
            if actor is not None:
                stmt = stmt.where(j.c.actor == bindparam("actor"))
            return stmt.order_by(j.c.created_at.desc(), S.Binary(j.c.id)).limit(bindparam("limit", type_=sa.Integer))

        return self._decoded(j, self._all(("jobs", actor is not None), build, {"actor": actor, "limit": int(limit)}))

    # nightly batch ledger --------------------------------------------------------------
    def _ledger(self, key, build, params=None) -> list[dict]:
        return self._decoded(S.batch_ledger, self._all(key, build, params))

    def ledger_entry(self, key: str) -> dict | None:
        b = S.batch_ledger
        rows = self._ledger("ledger_entry", lambda: select(b).where(b.c.key == bindparam("key")), {"key": key})
        return rows[0] if rows else None

    def ledger_by_stamp(self, stamp: str) -> dict | None:
        b = S.batch_ledger
        rows = self._ledger(
            "ledger_by_stamp",
            lambda: select(b).where(b.c.stamp == bindparam("stamp")).order_by(b.c.updated_at.desc()).limit(1),
            {"stamp": stamp},
        )
        return rows[0] if rows else None

    def ledger_start(self, entry: dict) -> dict:
        b = S.batch_ledger
        cols = ("key", "source", "item_id", "location", "stamp", "run_id", "first_seen_at", "updated_at")

        def build():
            insert = _UPSERT[self.dialect.name](b).values({**_binds(b, cols), "state": "running", "attempts": 1})
            return insert.on_conflict_do_update(
                index_elements=[b.c.key],
                set_={
                    "state": "running",
                    "reason": None,
                    "attempts": b.c.attempts + 1,
                    **{c: insert.excluded[c] for c in ("source", "item_id", "location", "stamp", "run_id")},
                    "reported_in": None,
                    "updated_at": insert.excluded.updated_at,
                },
            )

        at = now()
        with self.transaction():
            self._run(
                "ledger_start", build, {**{c: entry.get(c) for c in cols[:6]}, "first_seen_at": at, "updated_at": at}
            )
        written = self.ledger_entry(entry["key"])
        assert written is not None  # just written
        return written

    def ledger_update(self, key: str, fields: dict) -> None:
        with self.transaction():
            if self._update(S.batch_ledger, "key", key, {**fields, "updated_at": now()}) == 0:
                raise NotFoundError(f"ledger entry {key} does not exist")

    def ledger_entries(self, state: str | None = None, unreported: bool = False) -> list[dict]:
        b = S.batch_ledger

        def build():
            stmt = select(b)
            if state is not None:
                stmt = stmt.where(b.c.state == bindparam("state"))
            if unreported:
                stmt = stmt.where(b.c.reported_in.is_(None))
            return stmt.order_by(b.c.first_seen_at, S.Binary(b.c.key))

        return self._ledger(("ledger_entries", state is not None, unreported), build, {"state": state})

    def ledger_mark_reported(self, keys: list[str], digest_id: str) -> None:
        b = S.batch_ledger
        sql, _ = self._statement(
            "ledger_mark_reported",
            lambda: sa.update(b).where(b.c.key == bindparam("_key")).values(reported_in=bindparam("reported_in")),
        )
        with self.transaction():
            self._executemany(sql, [{"_key": k, "reported_in": digest_id} for k in keys])

    # area subscriptions and their deliveries -------------------------------------------
    def add_subscription(self, row: dict) -> dict:
        from ..errors import ConflictError

        with self.transaction():
            if any(s["name"] == row["name"] for s in self.subscriptions()):
                raise ConflictError(f"a subscription named {row['name']!r} exists")
            sid = self._insert(S.subscriptions, {**row, "created_at": now()})
        return next(s for s in self.subscriptions() if s["id"] == sid)

    def subscriptions(self, owner_name: str | None = None) -> list[dict]:
        s = S.subscriptions

        def build():
            stmt = select(s).where(s.c.removed_at.is_(None))
            if owner_name is not None:
                stmt = stmt.where(s.c.owner_name == bindparam("owner"))
            return stmt.order_by(s.c.id)

        return self._decoded(s, self._all(("subscriptions", owner_name is not None), build, {"owner": owner_name}))

    def subscription(self, name: str) -> dict:
        for row in self.subscriptions():
            if row["name"] == name:
                return row
        raise NotFoundError(f"subscription {name!r} does not exist")

    def remove_subscription(self, name: str) -> None:
        with self.transaction():
            self._update(S.subscriptions, "id", self.subscription(name)["id"], {"removed_at": now()})

    def add_delivery(self, row: dict) -> tuple[dict, bool]:
        d = S.deliveries
        at = now()
        row = encode(d, {**row, "state": "pending", "attempts": 0, "created_at": at, "updated_at": at})
        cols = tuple(row)

        def build():
            return (
                _UPSERT[self.dialect.name](d).values(_binds(d, cols)).on_conflict_do_nothing(index_elements=[d.c.key])
            )

        with self.transaction():
            new = self._run(("add_delivery", cols), build, row).rowcount == 1
            got = self._decoded(
                d,
                self._all("delivery_by_key", lambda: select(d).where(d.c.key == bindparam("key")), {"key": row["key"]}),
            )
        return got[0], new

    def deliveries(self, run_id=None, states=None, subscription_ids=None) -> list[dict]:
        d, s = S.deliveries, S.subscriptions
        states = _padded(states) if states else []
        ids = _padded(subscription_ids) if subscription_ids else []
        if subscription_ids is not None and not subscription_ids:
            return []

        def build():
            stmt = select(d, s.c.name.label("subscription"), s.c.channel, s.c.target).join(
                s, s.c.id == d.c.subscription_id
            )
            if run_id is not None:
                stmt = stmt.where(d.c.run_id == bindparam("run_id"))
            if states:
                stmt = stmt.where(_in(d.c.state, "state", len(states)))
            if ids:
                stmt = stmt.where(_in(d.c.subscription_id, "sub", len(ids)))
            return stmt.order_by(d.c.id)

        return self._decoded(
            d,
            self._all(
                ("deliveries", run_id is not None, len(states), len(ids)),
                build,
                {"run_id": run_id, **_in_params("state", states), **_in_params("sub", ids)},
            ),
        )

    def update_delivery(self, delivery_id: int, fields: dict) -> None:
        with self.transaction():
            if self._update(S.deliveries, "id", delivery_id, {**fields, "updated_at": now()}) == 0:
                raise NotFoundError(f"delivery {delivery_id} does not exist")

    def claim_delivery(
        self, delivery_id: int, owner: str, until: str, at: str, states=("pending",), take_from: str | None = None
    ) -> bool:
        d = S.deliveries
        states = _padded(states)

        def build():
            free = sa.or_(
                d.c.claimed_until.is_(None),
                d.c.claimed_until < bindparam("at", type_=S.TIMESTAMP),
                d.c.claimed_by == bindparam("owner"),
                d.c.claimed_by == bindparam("take_from"),
            )
            return (
                sa.update(d)
                .where(d.c.id == bindparam("_id"), _in(d.c.state, "state", len(states)), free)
                .values(
                    claimed_by=bindparam("owner"),
                    claimed_until=bindparam("until", type_=S.TIMESTAMP),
                    updated_at=bindparam("at", type_=S.TIMESTAMP),
                )
            )

        params = {
            "_id": delivery_id,
            "owner": owner,
            "take_from": take_from,
            "until": until,
            "at": at,
            **_in_params("state", states),
        }
        with self.transaction():
            return self._run(("claim_delivery", len(states)), build, params).rowcount == 1

    # rectification ledger ----------------------------------------------------------------
    def rectification(self, flag_id: int) -> dict | None:
        r = S.rectifications
        return self._first(
            "rectification", lambda: select(r).where(r.c.flag_id == bindparam("flag_id")), {"flag_id": flag_id}
        )

    def save_rectification(self, flag_id: int, fields: dict) -> dict:
        at = now()
        with self.transaction():
            if self.rectification(flag_id) is None:
                self._insert(
                    S.rectifications,
                    {**fields, "flag_id": flag_id, "created_at": at, "updated_at": at},
                    returning=False,
                )
            else:
                self._update(S.rectifications, "flag_id", flag_id, {**fields, "updated_at": at})
            written = self.rectification(flag_id)
            assert written is not None  # just written
            return written

    def rectifications(self) -> list[dict]:
        r = S.rectifications
        return self._all("rectifications", lambda: select(r).order_by(r.c.flag_id))

    def add_rectification_note(self, row: dict) -> int:
        with self.transaction():
            return self._insert(S.rectification_notes, row)

    def rectification_notes(self, flag_id: int) -> list[dict]:
        n = S.rectification_notes
        return self._all(
            "rectification_notes",
            lambda: select(n).where(n.c.flag_id == bindparam("flag_id")).order_by(n.c.noted_on, n.c.id),
            {"flag_id": flag_id},
        )

    # national leads (redline.leads) -------------------------------------------------------
    def add_lead(self, row: dict, geometry) -> int:
        with self.transaction():
            return self._insert(S.leads, row, geometry)

    def lead(self, batch: str, lead_id: str) -> dict | None:
        t = S.leads
        rows = self._all(
            "lead",
            lambda: select(*[c for c in t.c if c.name != "geom"]).where(
                t.c.batch == bindparam("batch"), t.c.lead_id == bindparam("lead_id")
            ),
            {"batch": batch, "lead_id": lead_id},
        )
        return self._decoded(t, rows)[0] if rows else None

    def leads(self, batch: str) -> list[dict]:
        t = S.leads
        rows = self._all(
            "leads", lambda: select(t).where(t.c.batch == bindparam("batch")).order_by(t.c.id), {"batch": batch}
        )
        return self._decoded(t, rows, geometry="geometry")
