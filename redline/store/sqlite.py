"""Embedded store: one SQLite file, geometries as WKB with an R*Tree index.

WAL mode lets readers (checks, exports) run while a scan writes; every scan is
one ``BEGIN IMMEDIATE`` transaction, so a crash leaves the file as it was.

The SQL is the shared core's (core.py); here is only what SQLite does its own way: the
connection, ``BEGIN IMMEDIATE`` as the write lock, and the spatial side: an R*Tree table
per geometry table (``zones_rtree``, ``scans_rtree``, ``flags_rtree``) kept by the store,
and the exact predicate as an SQL function, ``rl_intersects(geom, region)`` (shapely); a CQL2
S_INTERSECTS is tested before its statement, all candidates at once (:meth:`SQLiteStore._intersects_params`).
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import shapely
import sqlalchemy as sa
from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import sqlite

from ..errors import StoreError
from ..model import FLAG_TILE_FIELDS
from . import schema as S
from .core import SQLStore
from .migrations import HEAD, revision_number, upgrade_sqlite

# The schema is built by the migrations (migrations/versions/NNNN_*.py, one revision per
# change, for both backends); a fresh file runs all of them when opened. PRAGMA
# user_version mirrors the revision, so opening an up-to-date file costs one pragma.
SCHEMA_VERSION = revision_number(HEAD)


def _bbox(geom):
    minx, miny, maxx, maxy = shapely.bounds(geom)
    return minx, maxx, miny, maxy


def _wal(db: sqlite3.Connection, timeout: float = 60.0) -> None:
    """Switch to WAL. While another process creates the same fresh file this answers
    "database is locked" at once (no busy handler for journal-mode changes): retry."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@functools.lru_cache(maxsize=16)
def _prepared(wkb: bytes):
    geom = shapely.from_wkb(wkb)
    shapely.prepare(geom)
    return geom


def _intersects(geom: bytes | None, region: bytes) -> bool:
    """SQL function ``rl_intersects(geom, region)``: exact predicate, so LIMIT and COUNT see it."""
    return geom is not None and bool(shapely.intersects(_prepared(region), shapely.from_wkb(geom)))


def _rtree(table: sa.Table) -> sa.TableClause:
    return sa.table(f"{table.name}_rtree", *(sa.column(c) for c in ("id", "minx", "maxx", "miny", "maxy")))


def _box_params(prefix: str, box) -> dict:
    return dict(zip((f"{prefix}_minx", f"{prefix}_miny", f"{prefix}_maxx", f"{prefix}_maxy"), box))


class SQLiteStore(SQLStore):
    dialect = sqlite.dialect(paramstyle="named")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) != ":memory:" and not self.path.parent.exists():
            raise StoreError(f"store folder {self.path.parent} does not exist")
        try:
            self.db = sqlite3.connect(str(path), isolation_level=None, timeout=60, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.create_function("rl_intersects", 2, _intersects, deterministic=True)
            _wal(self.db)
            self.db.execute("PRAGMA foreign_keys=ON")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a redline store ({exc})") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: store schema v{version} is newer than this redline (v{SCHEMA_VERSION})")
        if version < SCHEMA_VERSION:
            # a fresh file or an older store: all missing revisions in one transaction,
            # so a half-migrated schema is never left behind
            upgrade_sqlite(self.db)

    @property
    def identity(self) -> str:
        return f"sqlite:{self.path.resolve()}" if str(self.path) != ":memory:" else f"sqlite:memory:{id(self)}"

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _outermost(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        else:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    # statements ------------------------------------------------------------------------
    def _execute(self, sql, params):
        cur = self.db.cursor()
        cur.row_factory = None  # plain tuples, made dicts by _rows: dict(sqlite3.Row) costs twice as much
        return cur.execute(sql, params)

    def _executemany(self, sql, rows):
        self.db.executemany(sql, rows)

    def _rows(self, cursor) -> list[dict]:
        if cursor.description is None:  # a statement without rows
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor]

    def _wkb(self, value):
        return value

    # spatial: R*Tree candidates, then the exact predicate ------------------------------
    def _spatial(self, table, bbox, region):
        rtree = _rtree(table)
        out = []
        for prefix, wanted in (("bbox", bbox), ("region", region)):  # a region: its bounds first
            if not wanted:
                continue
            out.append(
                table.c.id.in_(
                    select(rtree.c.id).where(
                        rtree.c.maxx >= bindparam(f"{prefix}_minx"),
                        rtree.c.minx <= bindparam(f"{prefix}_maxx"),
                        rtree.c.maxy >= bindparam(f"{prefix}_miny"),
                        rtree.c.miny <= bindparam(f"{prefix}_maxy"),
                    )
                )
            )
        if region:
            out.append(
                func.rl_intersects(table.c[S.GEOMETRY_COLUMN[table.name]], bindparam("region"), type_=sa.Boolean)
            )
        return out

    def _spatial_params(self, bbox, region) -> dict:
        params = {} if bbox is None else _box_params("bbox", bbox)
        if region is not None:
            params.update(_box_params("region", shapely.bounds(region)), region=shapely.to_wkb(region))
        return params

    def _intersects(self, table, prefix):
        ids = func.json_each(bindparam(prefix)).table_valued("value")
        return [table.c.id.in_(select(ids.c.value))]

    def _intersects_params(self, table, prefix, geom):
        """The rows of ``table`` whose geometry intersects ``geom``, found here, before the
        statement, bound as a JSON array of ids: the R*Tree's candidates whose box ``geom``
        covers (the box holds the geometry; a rectangle's test is four comparisons), then the
        others' geometries tested in one vectorised shapely call (a test per row in SQL, a
        Python callback, costs ten times as much)."""
        name, column = table.name, S.GEOMETRY_COLUMN[table.name]
        minx, miny, maxx, maxy = (float(v) for v in shapely.bounds(geom))
        cur = self.db.cursor()
        cur.row_factory = None
        boxes = cur.execute(
            f"SELECT id, minx, miny, maxx, maxy FROM {name}_rtree"
            " WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?",
            (minx, maxx, miny, maxy),
        ).fetchall()
        if not boxes:
            return {prefix: "[]"}
        a = np.array(boxes, float)
        ids = a[:, 0].astype(np.int64)
        shapely.prepare(geom)
        if shapely.equals(geom, shapely.box(minx, miny, maxx, maxy)):  # a rectangle (a bbox-like filter)
            inside = (a[:, 1] >= minx) & (a[:, 2] >= miny) & (a[:, 3] <= maxx) & (a[:, 4] <= maxy)
        else:
            inside = shapely.covers(geom, shapely.box(a[:, 1], a[:, 2], a[:, 3], a[:, 4]))
        found = ids[inside].tolist()
        rest = ids[~inside].tolist()
        if rest:
            rows = cur.execute(
                f"SELECT id, {column} FROM {name} WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(rest),)
            ).fetchall()
            hit = shapely.intersects(geom, shapely.from_wkb([wkb for _, wkb in rows])).tolist()
            found += [i for (i, _), h in zip(rows, hit, strict=True) if h]
        return {prefix: json.dumps(found)}

    def _bounds(self, table):
        rtree = _rtree(table)
        return [(rtree, rtree.c.id == table.c.id)], (rtree.c.minx, rtree.c.miny, rtree.c.maxx, rtree.c.maxy)

    def _indexed(self, table, row_id, geometry, new=True):
        if new:
            self.db.execute(f"INSERT INTO {table.name}_rtree VALUES (?,?,?,?,?)", (row_id, *_bbox(geometry)))
        else:
            self.db.execute(
                f"UPDATE {table.name}_rtree SET minx=?, maxx=?, miny=?, maxy=? WHERE id = ?", (*_bbox(geometry), row_id)
            )

    # vector tiles -----------------------------------------------------------------------
    def flag_points(self) -> dict[str, Sequence]:
        """Two scans, the flags and their R*Tree, matched by id (a join would look the R*Tree
        up once per flag, twice the work), as plain tuples."""
        f = S.flags
        sql, params = self._statement(
            "flag_fields", lambda: select(*[f.c[k] for k in FLAG_TILE_FIELDS]).order_by(f.c.id)
        )
        cur = self.db.cursor()
        cur.row_factory = None
        rows = cur.execute(sql, params).fetchall()
        if not rows:
            return {k: [] for k in (*FLAG_TILE_FIELDS, "cx", "cy")}
        columns: dict[str, Sequence] = dict(zip(FLAG_TILE_FIELDS, zip(*rows, strict=True), strict=True))
        centres = {
            r[0]: (r[1], r[2]) for r in cur.execute("SELECT id, (minx + maxx) / 2, (miny + maxy) / 2 FROM flags_rtree")
        }
        columns["cx"], columns["cy"] = zip(*(centres[i] for i in columns["id"]), strict=True)
        return columns

    def _zones_indexed(self, layer_version_id, zones):
        ids = [
            r[0]
            for r in self.db.execute("SELECT id FROM zones WHERE layer_version_id = ? ORDER BY id", (layer_version_id,))
        ]
        self.db.executemany(
            "INSERT INTO zones_rtree VALUES (?,?,?,?,?)",
            [(i, *_bbox(z.geometry)) for i, z in zip(ids, zones, strict=True)],
        )
