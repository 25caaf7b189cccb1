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

Geometries are written as WKB (``ST_GeomFromWKB(%s, 4326)``) and read as the hex EWKB
text PostGIS sends, parsed into shapely objects a whole result at a time.
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from contextlib import contextmanager
from datetime import date, datetime

import psycopg
import shapely
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg.types import TypeInfo
from psycopg.types.string import TextLoader

from ..errors import NotFoundError, StoreError
from ..layers import LoadReport, Zone
from .base import FLAG_FIELDS, STATS_GROUPS, FlagFilter, Store
from .migrations import HEAD, REVISIONS, postgres_revision, upgrade_postgres
from .sqlite import now

# pg_advisory_xact_lock key that every writing transaction holds ("rl-write")
WRITE_LOCK = 0x726C2D7772697465
# ST_Subdivide: at most this many vertices per piece of a zone in zone_parts
PART_VERTICES = 255
ENVELOPE = "ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
# for exact predicates: a bbox of zero width or height as the point or line it is (a collapsed
# polygon intersects nothing)
BBOX_GEOM = f"ST_Envelope({ENVELOPE})"
REGION = "ST_GeomFromWKB(%s, 4326)"


def conninfo(url: str) -> str:
    """The libpq URL for a store URL (``postgresql+psycopg://`` is accepted too)."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def oneline(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def geom_wkb(geometry) -> bytes | None:
    return None if geometry is None else shapely.to_wkb(geometry)


def _shapes(rows: list[dict], column: str, key: str) -> list[dict]:
    """Move each row's hex-EWKB ``column`` to ``key`` as a shapely geometry: all rows in one
    call of the vectorised parser (a call per row costs as much as the query), from bytes
    (GEOS reads hex several times slower than Python's bytes.fromhex)."""
    wkb = [None if (h := r.pop(column)) is None else bytes.fromhex(h) for r in rows]
    for r, g in zip(rows, shapely.from_wkb(wkb)):
        r[key] = g
    return rows


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


class _IsoTimestampLoader(Loader):
    """timestamptz as Python writes it, in UTC (the session's time zone): 2026-06-20T08:00:00+00:00."""

    def load(self, data):
        return datetime.fromisoformat(bytes(data).decode("ascii")).isoformat()


# Idle connections, per process and URL. The API opens a store per request: a new
# PostgreSQL backend each time would cost a fork and loading PostGIS into it (~20 ms).
_IDLE: dict[tuple[int, str], list[psycopg.Connection]] = {}
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


def _pooled(url: str) -> psycopg.Connection | None:
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


def _release(url: str, conn: psycopg.Connection) -> None:
    if not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with _IDLE_LOCK:
            idle = _IDLE.setdefault((os.getpid(), url), [])
            if len(idle) < _IDLE_MAX:
                idle.append(conn)
                return
    conn.close()


class PostGISStore(Store):
    def __init__(self, url: str):
        self.url = url
        self._depth = 0  # nesting of transaction()
        self.conn = _pooled(url)
        if self.conn is not None:  # checked and adapted when it was opened
            return
        try:
            timeout = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
            self.conn = psycopg.connect(conninfo(url), autocommit=True, row_factory=dict_row,
                                        application_name="redline", **timeout)
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
        self.conn.execute("SET TIME ZONE 'UTC'")
        self.conn.execute("SET DateStyle TO ISO")
        self._check_schema()
        # rows as the SQLite store gives them: dates as 'YYYY-MM-DD' (DateStyle ISO),
        # timestamps in Python's ISO form; geometries stay hex EWKB text until _shapes()
        self.conn.adapters.register_loader("date", TextLoader)
        self.conn.adapters.register_loader("timestamptz", _IsoTimestampLoader)
        self.conn.adapters.register_loader(TypeInfo.fetch(self.conn, "geometry").oid, TextLoader)

    def _check_schema(self) -> None:
        revision = postgres_revision(self.conn)
        if revision == HEAD:
            return
        where = redact(self.url)
        if revision is None:
            if self._one("SELECT to_regclass('flags') AS t")["t"] is not None:
                raise StoreError(f"{where}: not a redline store (tables but no schema revision)")
            try:  # an empty database: create the schema, as a fresh SQLite file does
                upgrade_postgres(self.url)
            except Exception as exc:
                raise StoreError(f"{where}: cannot create the redline schema "
                                 f"(the PostGIS extension must be installed, or the role allowed to create it): "
                                 f"{oneline(getattr(exc, 'orig', None) or exc)}") from None
        elif revision not in REVISIONS:
            raise StoreError(f"{where}: store schema {revision} is newer than this redline ({HEAD})")
        else:
            raise StoreError(f"{where}: store schema {revision} is older than this redline ({HEAD}); "
                             "run `redline db upgrade`")

    def close(self) -> None:
        """Give the connection back to this process's idle pool (or close it)."""
        if self.conn is not None:
            _release(self.url, self.conn)
            self.conn = None

    @contextmanager
    def transaction(self):
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._depth = 1
        try:
            with _available(self.url), self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield self
        finally:
            self._depth = 0

    # helpers ---------------------------------------------------------------------------
    def _all(self, sql: str, params=()) -> list[dict]:
        with _available(self.url):
            return self.conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params=()) -> dict | None:
        with _available(self.url):
            return self.conn.execute(sql, params).fetchone()

    def _insert(self, table: str, row: dict, geom_col: str | None = None, geometry=None,
                returning: str | None = "id"):
        cols = list(row)
        values = ["%s"] * len(cols)
        params = list(row.values())
        if geom_col is not None:
            cols.append(geom_col)
            values.append("ST_GeomFromWKB(%s, 4326)")
            params.append(geom_wkb(geometry))
        sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(values)})"
        with _available(self.url):
            if returning is None:
                self.conn.execute(sql, params)
                return None
            return self.conn.execute(f"{sql} RETURNING {returning}", params).fetchone()[returning]

    # layers ----------------------------------------------------------------------------
    def add_layer_version(self, report: LoadReport) -> dict:
        with self.transaction():
            version = self._one("SELECT COALESCE(MAX(version), 0) + 1 AS v FROM layer_versions WHERE kind = %s",
                                (report.kind,))["v"]
            lv_id = self._insert("layer_versions", {
                "kind": report.kind, "version": version, "source": report.source, "source_sha256": report.sha256,
                "source_crs": report.source_crs, "loaded_at": now(),
                "report": json.dumps({**report.summary(), "field_map": report.field_map}, ensure_ascii=False),
            })
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO zones (layer_version_id, kind, name, regime, code, attrs, valid_from, valid_to,"
                    " activity, area_ha, geom) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326))",
                    [(lv_id, z.kind, z.name, z.regime, z.code, json.dumps(z.attrs, ensure_ascii=False), z.valid_from,
                      z.valid_to, z.activity, z.area_ha, geom_wkb(z.geometry)) for z in report.zones],
                )
            self.conn.execute(
                "INSERT INTO zone_parts (zone_id, geom)"
                " SELECT id, ST_Subdivide(CASE WHEN ST_IsValid(geom) THEN geom ELSE ST_MakeValid(geom) END, %s)"
                " FROM zones WHERE layer_version_id = %s", (PART_VERTICES, lv_id))
        with _available(self.url):
            self.conn.execute("ANALYZE zone_parts")  # the planner must know the table grew (outside the lock)
        return {"id": lv_id, "kind": report.kind, "version": version}

    def layer_versions(self, kind=None, current_only=True) -> list[dict]:
        sql = "SELECT * FROM layer_versions"
        if current_only:
            sql += " WHERE id IN (SELECT MAX(id) FROM layer_versions GROUP BY kind)"
        rows = self._all(sql + ' ORDER BY kind COLLATE "C", version')
        return [r for r in rows if kind is None or r["kind"] == kind]

    def zone_refs(self, zone_ids) -> dict[int, str]:
        ids = sorted({int(i) for i in zone_ids if i is not None})
        rows = self._all("SELECT id, COALESCE(code, name) AS ref FROM zones WHERE id = ANY(%s)", (ids,)) if ids else []
        return {r["id"]: r["ref"] for r in rows}

    def zones(self, kinds, bbox=None, region=None) -> list[Zone]:
        current = {r["kind"]: r for r in self.layer_versions()}
        ids = [current[k]["id"] for k in kinds if k in current]
        if not ids:
            return []
        sql = ("SELECT z.*, lv.version FROM zones z JOIN layer_versions lv ON lv.id = z.layer_version_id"
               " WHERE z.layer_version_id = ANY(%s)")
        params: list = [ids]
        if bbox is not None:
            # exact test on the subdivided pieces: a subset of the R*Tree's bbox candidates,
            # still every zone that touches the bbox
            sql += f" AND z.id IN (SELECT zone_id FROM zone_parts WHERE ST_Intersects(geom, {BBOX_GEOM}))"
            params += list(bbox)
        if region is not None:
            sql += f" AND z.id IN (SELECT zone_id FROM zone_parts WHERE ST_Intersects(geom, {REGION}))"
            params.append(geom_wkb(region))
        out = []
        for r in _shapes(self._all(sql + " ORDER BY z.id", params), "geom", "geom"):
            z = Zone(r["kind"], r["name"], r["regime"], r["geom"], r["code"], r["attrs"],
                     date.fromisoformat(r["valid_from"]) if r["valid_from"] else None,
                     date.fromisoformat(r["valid_to"]) if r["valid_to"] else None,
                     r["activity"], r["id"], r["layer_version_id"], r["area_ha"])
            z.attrs["layer_version"] = r["version"]
            out.append(z)
        return out

    # scans -----------------------------------------------------------------------------
    def scan_by_checksum(self, checksum: str) -> dict | None:
        r = self._one("SELECT * FROM scans WHERE checksum = %s", (checksum,))
        if r is not None:
            r.pop("footprint")
        return r

    def insert_scan(self, scan: dict, footprint) -> int:
        cols = ("checksum", "product_id", "mode", "sensor", "acquired_before", "acquired_after", "files",
                "started_at", "finished_at", "state", "stats", "layer_versions", "rules_version", "observed_fraction")
        row = {c: json.dumps(scan[c], ensure_ascii=False) if c in ("files", "stats", "layer_versions") else scan[c]
               for c in cols}
        with self.transaction():
            return self._insert("scans", row, "footprint", footprint)

    def scans(self, bbox=None, since=None, until=None, region=None) -> list[dict]:
        sql, params = "SELECT * FROM scans WHERE state = 'done'", []
        if bbox is not None:
            sql += f" AND footprint && {ENVELOPE}"
            params += list(bbox)
        if region is not None:
            sql += f" AND ST_Intersects(footprint, {REGION})"
            params.append(geom_wkb(region))
        if since:
            sql += " AND acquired_after >= %s"
            params.append(since)
        if until:
            sql += " AND acquired_after <= %s"
            params.append(until)
        return _shapes(self._all(sql + " ORDER BY acquired_after, id", params), "footprint", "footprint")

    # flags -----------------------------------------------------------------------------
    def _where(self, flt: FlagFilter | None):
        clauses, params = [], []
        if flt is None:
            return "", params
        if flt.bbox is not None:
            clauses.append(f"geom && {ENVELOPE}")
            params += list(flt.bbox)
        if flt.region is not None:
            clauses.append(f"ST_Intersects(geom, {REGION})")
            params.append(geom_wkb(flt.region))
        for col in ("status", "severity", "activity", "admin_code"):
            values = getattr(flt, col)
            if values:
                clauses.append(f"{col} = ANY(%s)")
                params.append(list(values))
        if flt.since:
            clauses.append("last_seen >= %s")
            params.append(flt.since)
        if flt.until:
            clauses.append("first_seen <= %s")
            params.append(flt.until)
        if flt.after_id is not None:
            clauses.append("id > %s")
            params.append(flt.after_id)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def flags(self, flt=None, with_geometry=True) -> list[dict]:
        where, params = self._where(flt)
        cols = "*" if with_geometry else ", ".join(FLAG_FIELDS)  # no geometry to ship and parse
        sql = f"SELECT {cols} FROM flags{where} ORDER BY id"
        if flt is not None and flt.limit is not None:
            sql += f" LIMIT {int(flt.limit)}"
        rows = self._all(sql, params)
        return _shapes(rows, "geom", "geometry") if with_geometry else rows

    def count_flags(self, flt=None) -> int:
        where, params = self._where(flt)
        return self._one(f"SELECT COUNT(*) AS n FROM flags{where}", params)["n"]

    def flag(self, flag_id: int) -> dict:
        r = self._one("SELECT * FROM flags WHERE id = %s", (flag_id,))
        if r is None:
            raise NotFoundError(f"flag {flag_id} does not exist")
        return _shapes([r], "geom", "geometry")[0]

    def insert_flag(self, flag: dict, geometry) -> int:
        flag = {**flag, "layer_versions": json.dumps(flag["layer_versions"])}
        flag.setdefault("created_at", now())
        flag.setdefault("updated_at", flag["created_at"])
        with self.transaction():
            return self._insert("flags", flag, "geom", geometry)

    def update_flag(self, flag_id: int, fields: dict, geometry=None) -> None:
        fields = dict(fields)
        if "layer_versions" in fields:
            fields["layer_versions"] = json.dumps(fields["layer_versions"])
        fields["updated_at"] = now()
        sets = [f"{k} = %s" for k in fields]
        params = list(fields.values())
        if geometry is not None:
            sets.append("geom = ST_GeomFromWKB(%s, 4326)")
            params.append(geom_wkb(geometry))
        with self.transaction():
            cur = self.conn.execute(f"UPDATE flags SET {', '.join(sets)} WHERE id = %s", (*params, flag_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"flag {flag_id} does not exist")

    def add_observation(self, obs: dict, geometry) -> int:
        return self._insert("observations", dict(obs), "geom", geometry)

    def observations(self, flag_id: int) -> list[dict]:
        rows = self._all(
            "SELECT o.*, s.product_id, s.sensor FROM observations o JOIN scans s ON s.id = o.scan_id"
            " WHERE flag_id = %s ORDER BY observed_on, o.id", (flag_id,))
        return _shapes(rows, "geom", "geometry")

    def replace_conflicts(self, flag_id: int, conflicts: list[dict]) -> None:
        with self.transaction():
            self.conn.execute("DELETE FROM conflicts WHERE flag_id = %s", (flag_id,))
            for c in conflicts:
                self._insert("conflicts", {"flag_id": flag_id, **c}, returning=None)

    def conflicts(self, flag_id: int) -> list[dict]:
        return self._all("SELECT * FROM conflicts WHERE flag_id = %s ORDER BY overlap_ha DESC, id", (flag_id,))

    def audit(self, flag_id, actor, action, detail) -> None:
        self._insert("audit", {"flag_id": flag_id, "at": now(), "actor": actor, "action": action,
                               "detail": json.dumps(detail, ensure_ascii=False, default=str)}, returning=None)

    def history(self, flag_id: int) -> list[dict]:
        return self._all("SELECT * FROM audit WHERE flag_id = %s ORDER BY id", (flag_id,))

    # statistics ------------------------------------------------------------------------
    def stats(self, group_by: str, flt=None) -> list[dict]:
        cols = STATS_GROUPS[group_by]
        exprs = ["to_char(first_seen, 'YYYY-MM')" if c == "month" else c for c in cols]
        where, params = self._where(flt)
        select = ", ".join(f"{e} AS {c}" for e, c in zip(exprs, cols))
        # SQLite's order: binary collation ("C"), NULLs first
        order = ", ".join(f'{e} COLLATE "C" NULLS FIRST' for e in exprs)
        rows = self._all(
            f"SELECT {select}, COUNT(*) AS count, SUM(area_ha) AS area_ha FROM flags{where}"
            f" GROUP BY {', '.join(exprs)} ORDER BY count DESC, {order}", params)
        for d in rows:
            d["area_ha"] = round(d["area_ha"] or 0.0, 4)
            d["area_mu"] = round(d["area_ha"] * 15, 2)
        return rows

    # access tokens ---------------------------------------------------------------------
    def add_token(self, name, role, jurisdiction, token_hash) -> int:
        with self.transaction():
            return self._insert("tokens", {"name": name, "role": role, "jurisdiction": json.dumps(list(jurisdiction)),
                                           "token_hash": token_hash, "created_at": now()})

    @staticmethod
    def _token(r: dict) -> dict:
        r.pop("token_hash", None)
        return r

    def token_by_hash(self, token_hash: str) -> dict | None:
        r = self._one("SELECT * FROM tokens WHERE token_hash = %s AND revoked_at IS NULL", (token_hash,))
        return self._token(r) if r else None

    def tokens(self) -> list[dict]:
        return [self._token(r) for r in self._all("SELECT * FROM tokens ORDER BY id")]

    def revoke_token(self, token_id: int) -> None:
        with self.transaction():
            if self.conn.execute("UPDATE tokens SET revoked_at = %s WHERE id = %s", (now(), token_id)).rowcount == 0:
                raise NotFoundError(f"token {token_id} does not exist")

    # field evidence --------------------------------------------------------------------
    def add_evidence(self, record: dict) -> int:
        with self.transaction():
            return self._insert("evidence", dict(record))

    def evidence(self, flag_id: int) -> list[dict]:
        return self._all("SELECT * FROM evidence WHERE flag_id = %s ORDER BY id", (flag_id,))

    def evidence_item(self, evidence_id: int) -> dict:
        r = self._one("SELECT * FROM evidence WHERE id = %s", (evidence_id,))
        if r is None:
            raise NotFoundError(f"evidence {evidence_id} does not exist")
        return r

    # jobs ------------------------------------------------------------------------------
    def add_job(self, job: dict) -> None:
        job = {**job, "request": json.dumps(job.get("request", {})), "created_at": now(), "updated_at": now()}
        with self.transaction():
            self._insert("jobs", job, returning=None)

    def update_job(self, job_id: str, fields: dict) -> None:
        fields = dict(fields)
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"], default=str)
        fields["updated_at"] = now()
        with self.transaction():
            self.conn.execute(f"UPDATE jobs SET {', '.join(f'{k} = %s' for k in fields)} WHERE id = %s",
                              (*fields.values(), job_id))

    def job(self, job_id: str) -> dict:
        r = self._one("SELECT * FROM jobs WHERE id = %s", (job_id,))
        if r is None:
            raise NotFoundError(f"job {job_id} does not exist")
        return r

    # nightly batch ledger --------------------------------------------------------------
    def ledger_entry(self, key: str) -> dict | None:
        return self._one("SELECT * FROM batch_ledger WHERE key = %s", (key,))

    def ledger_by_stamp(self, stamp: str) -> dict | None:
        return self._one("SELECT * FROM batch_ledger WHERE stamp = %s ORDER BY updated_at DESC LIMIT 1", (stamp,))

    def ledger_start(self, entry: dict) -> dict:
        at = now()
        with self.transaction():
            self.conn.execute(
                "INSERT INTO batch_ledger (key, source, item_id, location, stamp, state, attempts, run_id,"
                " first_seen_at, updated_at) VALUES (%s, %s, %s, %s, %s, 'running', 1, %s, %s, %s)"
                " ON CONFLICT (key) DO UPDATE SET state = 'running', reason = NULL,"
                " attempts = batch_ledger.attempts + 1, source = excluded.source, item_id = excluded.item_id,"
                " location = excluded.location, stamp = excluded.stamp, run_id = excluded.run_id,"
                " reported_in = NULL, updated_at = excluded.updated_at",
                (entry["key"], entry["source"], entry["item_id"], entry["location"], entry["stamp"],
                 entry.get("run_id"), at, at))
        return self.ledger_entry(entry["key"])

    def ledger_update(self, key: str, fields: dict) -> None:
        fields = dict(fields)
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"], ensure_ascii=False, default=str)
        fields["updated_at"] = now()
        with self.transaction():
            if self.conn.execute(f"UPDATE batch_ledger SET {', '.join(f'{k} = %s' for k in fields)} WHERE key = %s",
                                 (*fields.values(), key)).rowcount == 0:
                raise NotFoundError(f"ledger entry {key} does not exist")

    def ledger_entries(self, state: str | None = None, unreported: bool = False) -> list[dict]:
        sql, params = "SELECT * FROM batch_ledger WHERE true", []
        if state is not None:
            sql += " AND state = %s"
            params.append(state)
        if unreported:
            sql += " AND reported_in IS NULL"
        return self._all(sql + ' ORDER BY first_seen_at, key COLLATE "C"', params)

    def ledger_mark_reported(self, keys: list[str], digest_id: str) -> None:
        with self.transaction():
            self.conn.execute("UPDATE batch_ledger SET reported_in = %s WHERE key = ANY(%s)", (digest_id, list(keys)))

