"""Production store: PostgreSQL + PostGIS, shared by the API and the nightly batch.

The same interface and the same rows as the SQLite store (dates and timestamps come
back as ISO strings, JSON columns as Python objects, geometries as shapely objects in
lon/lat), with real column types underneath: ``date``, ``timestamptz``, ``json``
(not jsonb: key order is kept, so exports match SQLite byte for byte) and
``geometry(Geometry, 4326)`` with GiST indexes. Spatial filters run in the database:
bbox filters with ``&&`` on the GiST index (the semantics of SQLite's R*Tree), zone
look-ups with ``ST_Intersects`` on ``zone_parts`` (zones cut by ``ST_Subdivide``), so a
county-sized query never tests a province-sized red-line polygon whole; a check's
region is tested exactly (``ST_Intersects``) against flags, zone parts and scan
footprints. The zones found are returned whole: overlap areas are computed by the
engine (geodesic, shapely), the same code for both backends.

Writers are serialised like SQLite's ``BEGIN IMMEDIATE``: every outermost
``transaction()`` first takes a transaction-level advisory lock, so two scans of
overlapping products cannot both decide that a patch is new (the second sees the
first's flags and records observations); ``scans.checksum`` is UNIQUE as a backstop.
Readers take no lock and see each statement's committed snapshot (READ COMMITTED).

Geometries are written as WKB (``ST_GeomFromWKB(%s, 4326)``, from the column type in
schema.py) and read as the hex EWKB text PostGIS sends, parsed into shapely objects a whole
result at a time. The SQL that is not spatial is the shared core's (core.py).
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import psycopg
import shapely
import sqlalchemy as sa
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg.types import TypeInfo
from psycopg.types.string import TextLoader
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql

from ..errors import InputError, StoreError
from ..model import FLAG_TILE_FIELDS
from . import schema as S
from .base import FlagFilter
from .core import SQLStore, _cell_params
from .cql import Compiler
from .migrations import HEAD, REVISIONS, postgres_revision, upgrade_postgres
from .urls import conninfo, oneline, redact

# pg_advisory_xact_lock key that every writing transaction holds ("rl-write")
WRITE_LOCK = 0x726C2D7772697465
# ST_Subdivide: at most this many vertices per piece of a zone in zone_parts
PART_VERTICES = 255


# libpq's connect_timeout (seconds) where the URL names none: an unreachable host answers
# 503 after this long instead of holding the request for the OS's TCP timeout (minutes)
CONNECT_TIMEOUT = 5


@contextmanager
def _available(url: str):
    """The server went away (stopped, restarted, network cut) or cannot serve now: a
    StoreError (503 in the API, one line in the CLI), not a driver error (500, traceback)."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreError(f"store unavailable at {redact(url)}: {oneline(exc)}") from exc
    except psycopg.DataError as exc:  # a value PostgreSQL refuses (a NUL character, say): the caller's input
        raise InputError(f"value not accepted by the store: {oneline(exc)}") from exc


class _IsoTimestampLoader(Loader):
    """timestamptz as Python writes it, in UTC (the session's time zone): 2026-06-20T08:00:00+00:00."""

    def load(self, data):
        return datetime.fromisoformat(bytes(data).decode("ascii")).isoformat()


# Idle connections, per process and URL. The API opens a store per request: a new
# PostgreSQL backend each time would cost a fork and loading PostGIS into it (~20 ms).
_IDLE: dict[tuple[int, str], list[psycopg.Connection[dict[str, Any]]]] = {}
_IDLE_MAX = 8
_IDLE_LOCK = threading.Lock()
_LIVE: weakref.WeakSet = weakref.WeakSet()  # every connection this process opened


def _forget_parent_connections() -> None:
    """In a forked child: the inherited connections are the parent's sessions. Point their
    sockets at /dev/null, so that nothing the child does (closing them included) reaches
    the server, and start with an empty pool."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for conn in list(_LIVE):
        try:
            os.dup2(devnull, conn.pgconn.socket)
        except Exception:  # already closed
            pass
    os.close(devnull)
    _IDLE.clear()


os.register_at_fork(after_in_child=_forget_parent_connections)


def _pooled(url: str) -> psycopg.Connection[dict[str, Any]] | None:
    while True:
        with _IDLE_LOCK:
            idle = _IDLE.get((os.getpid(), url))
            conn = idle.pop() if idle else None
        if conn is None:
            return None
        try:
            conn.execute("SELECT 1")  # still there (the server may have been restarted)
            return conn
        except psycopg.Error:
            conn.close()


def _release(url: str, conn: psycopg.Connection[dict[str, Any]]) -> None:
    if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with _IDLE_LOCK:
            idle = _IDLE.setdefault((os.getpid(), url), [])
            if len(idle) < _IDLE_MAX:
                idle.append(conn)
                return
    conn.close()


class PostGISStore(SQLStore):
    # compiled as for psycopg2: the same "pyformat" placeholders, without casts on every value
    dialect = postgresql.psycopg2.dialect()

    def __init__(self, url: str):
        self.url = url
        self.conn: psycopg.Connection[dict[str, Any]] | None = _pooled(url)
        if self.conn is not None:  # checked and adapted when it was opened
            return
        try:
            timeout: dict[str, Any] = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
            self.conn = psycopg.connect(
                conninfo(url), autocommit=True, row_factory=dict_row, application_name="redline", **timeout
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {redact(url)}: {oneline(exc)}") from None
        _LIVE.add(self.conn)
        try:
            with _available(url):
                self._prepare()
        except BaseException:
            self.conn.close()
            raise

    def _prepare(self) -> None:
        """Session settings, schema check, type adapters: once per new connection."""
        conn = self.conn
        assert conn is not None  # just opened
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET DateStyle TO ISO")
        self._check_schema()
        # rows as the SQLite store gives them: dates as 'YYYY-MM-DD' (DateStyle ISO), timestamps
        # in Python's ISO form, JSON as its text (decoded by the core, as SQLite's); geometries
        # stay hex EWKB text until a whole result is parsed at once (core._decoded)
        conn.adapters.register_loader("date", TextLoader)
        conn.adapters.register_loader("json", TextLoader)
        conn.adapters.register_loader("timestamptz", _IsoTimestampLoader)
        geometry = TypeInfo.fetch(conn, "geometry")
        assert geometry is not None  # the schema check has made sure PostGIS is there
        conn.adapters.register_loader(geometry.oid, TextLoader)

    def _check_schema(self) -> None:
        revision = postgres_revision(self.conn)
        if revision == HEAD:
            return
        where = redact(self.url)
        if revision is None:
            with _available(self.url):
                assert self.conn is not None  # checked while open
                row = self.conn.execute("SELECT to_regclass('flags') AS t").fetchone()
                assert row is not None  # a SELECT without FROM: one row
                tables = row["t"]
            if tables is not None:
                raise StoreError(f"{where}: not a redline store (tables but no schema revision)")
            try:  # an empty database: create the schema, as a fresh SQLite file does
                upgrade_postgres(self.url)
            except Exception as exc:
                raise StoreError(
                    f"{where}: cannot create the redline schema "
                    f"(the PostGIS extension must be installed, or the role allowed to create it): "
                    f"{oneline(getattr(exc, 'orig', None) or exc)}"
                ) from None
        elif revision not in REVISIONS:
            raise StoreError(f"{where}: store schema {revision} is newer than this redline ({HEAD})")
        else:
            raise StoreError(
                f"{where}: store schema {revision} is older than this redline ({HEAD}); run `redline db upgrade`"
            )

    @property
    def identity(self) -> str:
        return self.url

    def close(self) -> None:
        """Give the connection back to this process's idle pool (or close it)."""
        if self.conn is not None:
            _release(self.url, self.conn)
            self.conn = None

    @contextmanager
    def _outermost(self):
        with _available(self.url), self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield

    # statements ------------------------------------------------------------------------
    def _execute(self, sql, params):
        with _available(self.url):
            return self.conn.execute(sql, params)

    def _executemany(self, sql, rows):
        with _available(self.url), self.conn.cursor() as cur:
            cur.executemany(sql, rows)

    def _rows(self, cursor) -> list[dict]:
        with _available(self.url):
            return cursor.fetchall()

    def _wkb(self, value):
        # hex EWKB text → bytes (GEOS reads hex several times slower than Python's bytes.fromhex)
        return None if value is None else bytes.fromhex(value)

    # spatial: GiST indexes; zones through their subdivided parts ----------------------
    def _spatial(self, table, bbox, region):
        envelope = func.ST_MakeEnvelope(*(bindparam(f"bbox_{k}") for k in ("minx", "miny", "maxx", "maxy")), S.SRID)
        given = S.FromWKB(bindparam("region"), S.GEOMETRY)
        out = []
        if table.name == "zones":
            # exact tests on the subdivided pieces: a subset of the R*Tree's bbox candidates, still
            # every zone that touches the bbox (a bbox of zero width or height as the point or line
            # it is: a collapsed polygon intersects nothing)
            parts = S.zone_parts
            for shape, wanted in ((func.ST_Envelope(envelope), bbox), (given, region)):
                if wanted:
                    out.append(
                        table.c.id.in_(
                            select(parts.c.zone_id).where(func.ST_Intersects(parts.c.geom, shape, type_=sa.Boolean))
                        )
                    )
            return out
        geom = table.c[S.GEOMETRY_COLUMN[table.name]]
        if bbox:
            out.append(geom.op("&&", return_type=sa.Boolean)(envelope))
        if region:
            out.append(func.ST_Intersects(geom, given, type_=sa.Boolean))
        return out

    def _spatial_params(self, bbox, region) -> dict:
        params = {} if bbox is None else dict(zip(("bbox_minx", "bbox_miny", "bbox_maxx", "bbox_maxy"), bbox))
        if region is not None:
            params["region"] = shapely.to_wkb(region)
        return params

    def _intersects(self, table, prefix):
        geom = table.c[S.GEOMETRY_COLUMN[table.name]]
        return [func.ST_Intersects(geom, S.FromWKB(bindparam(prefix), S.GEOMETRY), type_=sa.Boolean)]

    def _intersects_params(self, table, prefix, geom):
        return {prefix: shapely.to_wkb(geom)}

    def _bounds(self, table):
        geom = table.c[S.GEOMETRY_COLUMN[table.name]]
        return [], tuple(getattr(func, f"ST_{k}")(geom, type_=sa.Float) for k in ("XMin", "YMin", "XMax", "YMax"))

    # vector tiles in the database: ST_AsMVT --------------------------------------------
    def vector_tile(self, collection, spec, flt=None):
        """The tile built by ST_AsMVT with the engine's rules (redline.tiles): the same clip,
        simplification, properties and point thinning as the engine's own encoder gives."""
        if collection == "flags":
            flt = replace(
                flt or FlagFilter(),
                bbox=spec.lonlat_bounds,
                region=None,
                limit=None,
                after_id=None,
                offset=None,
                sortby=(),
            )
            shape, conditions, params = self._where(flt)
            build = (
                (lambda: self._mvt_points(spec, conditions))
                if spec.points
                else (lambda: self._mvt_flags(spec, conditions))
            )
            key = ("mvt_flags", spec.points, shape)
        else:
            current = [r for r in self.layer_versions() if r["kind"] == collection]
            if not current:
                return b""
            where = None
            params = {**self._spatial_params(spec.lonlat_bounds, None), "lv": current[0]["id"]}
            if flt is not None and flt.cql is not None:
                where, cql_params = Compiler(self, S.zones).compile(flt.cql)
                params.update(cql_params)
            build = lambda: self._mvt_zones(spec, collection, where)  # noqa: E731
            key = ("mvt_zones", collection, spec.band is not None)
            shape = None if where is not None else key
        params.update(z=spec.z, x=spec.x, y=spec.y, tol=spec.tolerance_m, band=spec.band, **_cell_params(spec))
        row = self._first(None if shape is None else key, build, params)
        return bytes(row["mvt"]) if row and row["mvt"] else b""

    def _mvt_geom(self, spec, geom):
        env = func.ST_TileEnvelope(
            bindparam("z", type_=sa.Integer),
            bindparam("x", type_=sa.Integer),
            bindparam("y", type_=sa.Integer),
            type_=S.GEOMETRY,
        )
        clipped = func.ST_ClipByBox2D(
            geom,
            func.ST_MakeEnvelope(*(bindparam(f"bbox_{k}") for k in ("minx", "miny", "maxx", "maxy")), S.SRID),
            type_=S.GEOMETRY,
        )
        # as the engine simplifies (redline.tiles._generalised): not keeping topology, which
        # costs more than the rest of the tile, but keeping what collapses (ST_AsMVTGeom
        # repairs the polygons and drops those under its grid)
        merc = func.ST_Simplify(
            func.ST_Transform(clipped, 3857, type_=S.GEOMETRY),
            bindparam("tol", type_=sa.Float),
            sa.true(),
            type_=S.GEOMETRY,
        )
        return func.ST_AsMVTGeom(merc, env, spec.extent, spec.buffer, True, type_=S.GEOMETRY)

    @staticmethod
    def _mvt(inner, name: str, spec):
        q = inner.subquery("q")
        return (
            select(
                func.ST_AsMVT(sa.literal_column("q"), name, spec.extent, "geom", "fid", type_=sa.LargeBinary).label(
                    "mvt"
                )
            )
            .select_from(q)
            .where(sa.literal_column("q.geom").is_not(None))
        )

    _FLAG_TILE = FLAG_TILE_FIELDS

    def _flag_columns(self, f):
        return [
            f.c.id.label("fid"),
            *[
                sa.cast(f.c[c], sa.Text).label(c) if c in ("first_seen", "last_seen") else f.c[c]
                for c in self._FLAG_TILE
            ],
        ]

    def _mvt_flags(self, spec, conditions):
        f = S.flags
        inner = select(*self._flag_columns(f), self._mvt_geom(spec, f.c.geom).label("geom")).where(*conditions())
        return self._mvt(inner, "flags", spec)

    def _mvt_points(self, spec, conditions):
        f, c = self._cells(spec, conditions)
        inner = (
            select(
                *self._flag_columns(f),
                c.c.pixel_flags,
                func.ST_MakePoint(c.c.px, c.c.py, type_=S.GEOMETRY).label("geom"),
            )
            .select_from(c.join(f, f.c.id == c.c.id))
            .where(c.c.rn == 1)
        )
        return self._mvt(inner, "flags", spec)

    def _mvt_zones(self, spec, kind, where):
        z, zb = S.zones, S.zone_bands
        box = func.ST_MakeEnvelope(*(bindparam(f"bbox_{k}") for k in ("minx", "miny", "maxx", "maxy")), S.SRID)
        # the GiST box test only (not the exact test on zone_parts): the clip drops what stays
        # outside; zoomed out, the zones' generalised copies of the tile's band (zone_bands)
        inner = select(
            z.c.id.label("fid"),
            z.c.id,
            z.c.name,
            z.c.regime,
            z.c.code,
            z.c.kind.label("layer"),
            self._mvt_geom(spec, z.c.geom if spec.band is None else zb.c.geom).label("geom"),
        )
        if spec.band is not None:
            inner = inner.select_from(
                z.join(zb, (zb.c.zone_id == z.c.id) & (zb.c.band == bindparam("band", type_=sa.Integer)))
            )
        inner = inner.where(
            z.c.layer_version_id == bindparam("lv"),
            z.c.geom.op("&&", return_type=sa.Boolean)(box),
            *([where] if where is not None else []),
        )
        return self._mvt(inner, kind, spec)

    def _zones_indexed(self, layer_version_id, zones):
        self.conn.execute(
            "INSERT INTO zone_parts (zone_id, geom)"
            " SELECT id, ST_Subdivide(CASE WHEN ST_IsValid(geom) THEN geom ELSE ST_MakeValid(geom) END, %s)"
            " FROM zones WHERE layer_version_id = %s",
            (PART_VERTICES, layer_version_id),
        )

    def _zones_loaded(self):
        with _available(self.url):
            self.conn.execute("ANALYZE zone_parts")  # the planner must know the table grew (outside the lock)
