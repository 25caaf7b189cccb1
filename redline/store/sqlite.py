"""Embedded store: one SQLite file, geometries as WKB with an R*Tree index.

WAL mode lets readers (checks, exports) run while a scan writes; every scan is
one ``BEGIN IMMEDIATE`` transaction, so a crash leaves the file as it was.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path

import shapely

from ..errors import NotFoundError, StoreError
from ..layers import LoadReport, Zone
from .base import STATS_GROUPS, FlagFilter, Store
from .migrations import HEAD, revision_number, upgrade_sqlite

# The schema is defined once, by the migrations (migrations/versions/NNNN_*.py, one revision
# per change, for both backends); a fresh file runs all of them when opened. PRAGMA
# user_version mirrors the revision, so opening an up-to-date file costs one pragma.
SCHEMA_VERSION = revision_number(HEAD)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _iso(v):
    return v.isoformat() if isinstance(v, (date, datetime)) else v


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


def _spatial(id_col: str, rtree: str, geom_col: str, bbox=None, region=None) -> tuple[str, list]:
    """SQL conditions and parameters: rows whose R*Tree box overlaps ``bbox`` and, for a
    ``region``, whose geometry intersects it exactly (R*Tree candidates first)."""
    sql, params = "", []
    for box in (bbox, None if region is None else shapely.bounds(region)):
        if box is not None:
            sql += (f" AND {id_col} IN (SELECT id FROM {rtree}"
                    " WHERE maxx >= ? AND minx <= ? AND maxy >= ? AND miny <= ?)")
            params += [box[0], box[2], box[1], box[3]]
    if region is not None:
        sql += f" AND rl_intersects({geom_col}, ?)"
        params.append(shapely.to_wkb(region))
    return sql, params


class SQLiteStore(Store):
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._depth = 0  # nesting of transaction()
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

    def close(self) -> None:
        self.db.close()

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
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        else:
            if self.db.in_transaction:
                self.db.execute("COMMIT")
        finally:
            self._depth = 0

    # layers ----------------------------------------------------------------------------
    def add_layer_version(self, report: LoadReport) -> dict:
        with self.transaction():
            row = self.db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM layer_versions WHERE kind = ?", (report.kind,)
            ).fetchone()
            version = row[0]
            cur = self.db.execute(
                "INSERT INTO layer_versions (kind, version, source, source_sha256, source_crs, loaded_at, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (report.kind, version, report.source, report.sha256, report.source_crs, now(),
                 json.dumps({**report.summary(), "field_map": report.field_map}, ensure_ascii=False)),
            )
            lv_id = cur.lastrowid
            for z in report.zones:
                zid = self.db.execute(
                    "INSERT INTO zones (layer_version_id, kind, name, regime, code, attrs, valid_from, valid_to,"
                    " activity, area_ha, geom) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (lv_id, z.kind, z.name, z.regime, z.code, json.dumps(z.attrs, ensure_ascii=False),
                     _iso(z.valid_from), _iso(z.valid_to), z.activity, z.area_ha, shapely.to_wkb(z.geometry)),
                ).lastrowid
                self.db.execute("INSERT INTO zones_rtree VALUES (?,?,?,?,?)", (zid, *_bbox(z.geometry)))
        return {"id": lv_id, "kind": report.kind, "version": version}

    def layer_versions(self, kind=None, current_only=True) -> list[dict]:
        sql = "SELECT * FROM layer_versions"
        if current_only:
            sql += " WHERE id IN (SELECT MAX(id) FROM layer_versions GROUP BY kind)"
        rows = [dict(r) for r in self.db.execute(sql + " ORDER BY kind, version")]
        for r in rows:
            r["report"] = json.loads(r["report"])
        return [r for r in rows if kind is None or r["kind"] == kind]

    def zone_refs(self, zone_ids) -> dict[int, str]:
        ids = sorted({int(i) for i in zone_ids if i is not None})
        rows = self.db.execute(
            f"SELECT id, COALESCE(code, name) FROM zones WHERE id IN ({','.join('?' * len(ids))})", ids
        ) if ids else []
        return {r[0]: r[1] for r in rows}

    def zones(self, kinds, bbox=None, region=None) -> list[Zone]:
        current = {r["kind"]: r for r in self.layer_versions()}
        ids = [current[k]["id"] for k in kinds if k in current]
        if not ids:
            return []
        sql = f"SELECT z.*, lv.version FROM zones z JOIN layer_versions lv ON lv.id = z.layer_version_id WHERE z.layer_version_id IN ({','.join('?' * len(ids))})"
        params: list = list(ids)
        where, more = _spatial("z.id", "zones_rtree", "z.geom", bbox, region)
        sql += where
        params += more
        out = []
        for r in self.db.execute(sql + " ORDER BY z.id", params):
            z = Zone(
                r["kind"], r["name"], r["regime"], shapely.from_wkb(r["geom"]), r["code"], json.loads(r["attrs"]),
                date.fromisoformat(r["valid_from"]) if r["valid_from"] else None,
                date.fromisoformat(r["valid_to"]) if r["valid_to"] else None,
                r["activity"], r["id"], r["layer_version_id"], r["area_ha"],
            )
            z.attrs["layer_version"] = r["version"]
            out.append(z)
        return out

    # scans -----------------------------------------------------------------------------
    def scan_by_checksum(self, checksum: str) -> dict | None:
        r = self.db.execute("SELECT * FROM scans WHERE checksum = ?", (checksum,)).fetchone()
        return self._scan(r) if r else None

    def _scan(self, r, with_footprint=False) -> dict:
        d = dict(r)
        fp = d.pop("footprint")
        for k in ("files", "stats", "layer_versions"):
            d[k] = json.loads(d[k])
        if with_footprint:
            d["footprint"] = shapely.from_wkb(fp) if fp else None
        return d

    def insert_scan(self, scan: dict, footprint) -> int:
        cols = ("checksum", "product_id", "mode", "sensor", "acquired_before", "acquired_after", "files",
                "started_at", "finished_at", "state", "stats", "layer_versions", "rules_version", "observed_fraction")
        values = [scan[c] for c in cols]
        for i, c in enumerate(cols):
            if c in ("files", "stats", "layer_versions"):
                values[i] = json.dumps(values[i], ensure_ascii=False)
        with self.transaction():
            sid = self.db.execute(
                f"INSERT INTO scans ({','.join(cols)}, footprint) VALUES ({','.join('?' * (len(cols) + 1))})",
                (*values, shapely.to_wkb(footprint) if footprint is not None else None),
            ).lastrowid
            if footprint is not None:
                self.db.execute("INSERT INTO scans_rtree VALUES (?,?,?,?,?)", (sid, *_bbox(footprint)))
        return sid

    def scans(self, bbox=None, since=None, until=None, region=None) -> list[dict]:
        where, params = _spatial("id", "scans_rtree", "footprint", bbox, region)
        sql = "SELECT * FROM scans WHERE state = 'done'" + where
        if since:
            sql += " AND acquired_after >= ?"
            params.append(_iso(since))
        if until:
            sql += " AND acquired_after <= ?"
            params.append(_iso(until))
        return [self._scan(r, with_footprint=True) for r in self.db.execute(sql + " ORDER BY acquired_after, id", params)]

    # flags -----------------------------------------------------------------------------
    def _where(self, flt: FlagFilter | None):
        clauses, params = [], []
        if flt is None:
            return "", params
        where, params = _spatial("id", "flags_rtree", "geom", flt.bbox, flt.region)
        if where:
            clauses.append(where[len(" AND "):])
        for col in ("status", "severity", "activity", "admin_code"):
            values = getattr(flt, col)
            if values:
                clauses.append(f"{col} IN ({','.join('?' * len(values))})")
                params += list(values)
        if flt.since:
            clauses.append("last_seen >= ?")
            params.append(_iso(flt.since))
        if flt.until:
            clauses.append("first_seen <= ?")
            params.append(_iso(flt.until))
        if flt.after_id is not None:
            clauses.append("id > ?")
            params.append(flt.after_id)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _flag(self, r, with_geometry=True) -> dict:
        d = dict(r)
        geom = d.pop("geom", None)
        d["layer_versions"] = json.loads(d["layer_versions"])
        if with_geometry:
            d["geometry"] = shapely.from_wkb(geom)
        return d

    def flags(self, flt=None, with_geometry=True) -> list[dict]:
        where, params = self._where(flt)
        sql = f"SELECT * FROM flags{where} ORDER BY id"
        if flt is not None and flt.limit is not None:
            sql += f" LIMIT {int(flt.limit)}"
        return [self._flag(r, with_geometry) for r in self.db.execute(sql, params)]

    def count_flags(self, flt=None) -> int:
        where, params = self._where(flt)
        return self.db.execute(f"SELECT COUNT(*) FROM flags{where}", params).fetchone()[0]

    def flag(self, flag_id: int) -> dict:
        r = self.db.execute("SELECT * FROM flags WHERE id = ?", (flag_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"flag {flag_id} does not exist")
        return self._flag(r)

    def insert_flag(self, flag: dict, geometry) -> int:
        flag = {k: _iso(v) for k, v in flag.items()}
        flag["layer_versions"] = json.dumps(flag["layer_versions"])
        flag.setdefault("created_at", now())
        flag.setdefault("updated_at", flag["created_at"])
        cols = list(flag)
        with self.transaction():
            fid = self.db.execute(
                f"INSERT INTO flags ({','.join(cols)}, geom) VALUES ({','.join('?' * (len(cols) + 1))})",
                (*flag.values(), shapely.to_wkb(geometry)),
            ).lastrowid
            self.db.execute("INSERT INTO flags_rtree VALUES (?,?,?,?,?)", (fid, *_bbox(geometry)))
        return fid

    def update_flag(self, flag_id: int, fields: dict, geometry=None) -> None:
        fields = {k: _iso(v) for k, v in fields.items()}
        if "layer_versions" in fields:
            fields["layer_versions"] = json.dumps(fields["layer_versions"])
        fields["updated_at"] = now()
        sets = [f"{k} = ?" for k in fields]
        params = list(fields.values())
        if geometry is not None:
            sets.append("geom = ?")
            params.append(shapely.to_wkb(geometry))
        with self.transaction():
            cur = self.db.execute(f"UPDATE flags SET {', '.join(sets)} WHERE id = ?", (*params, flag_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"flag {flag_id} does not exist")
            if geometry is not None:
                self.db.execute("UPDATE flags_rtree SET minx=?, maxx=?, miny=?, maxy=? WHERE id = ?",
                                (*_bbox(geometry), flag_id))

    def add_observation(self, obs: dict, geometry) -> int:
        obs = {k: _iso(v) for k, v in obs.items()}
        cols = list(obs)
        return self.db.execute(
            f"INSERT INTO observations ({','.join(cols)}, geom) VALUES ({','.join('?' * (len(cols) + 1))})",
            (*obs.values(), shapely.to_wkb(geometry)),
        ).lastrowid

    def observations(self, flag_id: int) -> list[dict]:
        rows = self.db.execute(
            "SELECT o.*, s.product_id, s.sensor FROM observations o JOIN scans s ON s.id = o.scan_id"
            " WHERE flag_id = ? ORDER BY observed_on, o.id", (flag_id,))
        out = []
        for r in rows:
            d = dict(r)
            d["geometry"] = shapely.from_wkb(d.pop("geom"))
            out.append(d)
        return out

    def replace_conflicts(self, flag_id: int, conflicts: list[dict]) -> None:
        with self.transaction():
            self.db.execute("DELETE FROM conflicts WHERE flag_id = ?", (flag_id,))
            for c in conflicts:
                cols = list(c)
                self.db.execute(
                    f"INSERT INTO conflicts (flag_id, {','.join(cols)}) VALUES (?, {','.join('?' * len(cols))})",
                    (flag_id, *c.values()),
                )

    def conflicts(self, flag_id: int) -> list[dict]:
        return [dict(r) for r in self.db.execute(
            "SELECT * FROM conflicts WHERE flag_id = ? ORDER BY overlap_ha DESC, id", (flag_id,))]

    def audit(self, flag_id, actor, action, detail) -> None:
        self.db.execute(
            "INSERT INTO audit (flag_id, at, actor, action, detail) VALUES (?,?,?,?,?)",
            (flag_id, now(), actor, action, json.dumps(detail, ensure_ascii=False, default=str)),
        )

    def history(self, flag_id: int) -> list[dict]:
        rows = [dict(r) for r in self.db.execute("SELECT * FROM audit WHERE flag_id = ? ORDER BY id", (flag_id,))]
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    # statistics ------------------------------------------------------------------------
    def stats(self, group_by: str, flt=None) -> list[dict]:
        cols = STATS_GROUPS[group_by]
        where, params = self._where(flt)
        select = ", ".join("substr(first_seen, 1, 7) AS month" if c == "month" else c for c in cols)
        rows = self.db.execute(
            f"SELECT {select}, COUNT(*) AS count, SUM(area_ha) AS area_ha FROM flags{where}"
            f" GROUP BY {', '.join(cols)} ORDER BY count DESC, {', '.join(cols)}", params)
        out = []
        for r in rows:
            d = dict(r)
            d["area_ha"] = round(d["area_ha"] or 0.0, 4)
            d["area_mu"] = round(d["area_ha"] * 15, 2)
            out.append(d)
        return out

    # access tokens ---------------------------------------------------------------------
    def add_token(self, name, role, jurisdiction, token_hash) -> int:
        with self.transaction():
            return self.db.execute(
                "INSERT INTO tokens (name, role, jurisdiction, token_hash, created_at) VALUES (?,?,?,?,?)",
                (name, role, json.dumps(list(jurisdiction)), token_hash, now())).lastrowid

    def _token(self, r) -> dict:
        d = dict(r)
        d["jurisdiction"] = json.loads(d["jurisdiction"])
        d.pop("token_hash", None)
        return d

    def token_by_hash(self, token_hash: str) -> dict | None:
        r = self.db.execute("SELECT * FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
                            (token_hash,)).fetchone()
        return self._token(r) if r else None

    def tokens(self) -> list[dict]:
        return [self._token(r) for r in self.db.execute("SELECT * FROM tokens ORDER BY id")]

    def revoke_token(self, token_id: int) -> None:
        with self.transaction():
            if self.db.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now(), token_id)).rowcount == 0:
                raise NotFoundError(f"token {token_id} does not exist")

    # field evidence --------------------------------------------------------------------
    def add_evidence(self, record: dict) -> int:
        cols = list(record)
        with self.transaction():
            return self.db.execute(
                f"INSERT INTO evidence ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                tuple(record.values())).lastrowid

    def evidence(self, flag_id: int) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM evidence WHERE flag_id = ? ORDER BY id", (flag_id,))]

    def evidence_item(self, evidence_id: int) -> dict:
        r = self.db.execute("SELECT * FROM evidence WHERE id = ?", (evidence_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"evidence {evidence_id} does not exist")
        return dict(r)

    # jobs ------------------------------------------------------------------------------
    def add_job(self, job: dict) -> None:
        job = {**job, "request": json.dumps(job.get("request", {})), "created_at": now(), "updated_at": now()}
        cols = list(job)
        with self.transaction():
            self.db.execute(f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                            tuple(job.values()))

    def update_job(self, job_id: str, fields: dict) -> None:
        fields = dict(fields)
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"], default=str)
        fields["updated_at"] = now()
        with self.transaction():
            self.db.execute(f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                            (*fields.values(), job_id))

    def job(self, job_id: str) -> dict:
        r = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if r is None:
            raise NotFoundError(f"job {job_id} does not exist")
        d = dict(r)
        d["request"] = json.loads(d["request"])
        d["result"] = json.loads(d["result"]) if d["result"] else None
        return d

    # nightly batch ledger --------------------------------------------------------------
    def _ledger(self, r) -> dict:
        d = dict(r)
        d["result"] = json.loads(d["result"]) if d["result"] else None
        return d

    def ledger_entry(self, key: str) -> dict | None:
        r = self.db.execute("SELECT * FROM batch_ledger WHERE key = ?", (key,)).fetchone()
        return self._ledger(r) if r else None

    def ledger_by_stamp(self, stamp: str) -> dict | None:
        r = self.db.execute("SELECT * FROM batch_ledger WHERE stamp = ? ORDER BY updated_at DESC LIMIT 1",
                            (stamp,)).fetchone()
        return self._ledger(r) if r else None

    def ledger_start(self, entry: dict) -> dict:
        at = now()
        with self.transaction():
            self.db.execute(
                "INSERT INTO batch_ledger (key, source, item_id, location, stamp, state, attempts, run_id,"
                " first_seen_at, updated_at) VALUES (?,?,?,?,?, 'running', 1, ?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE SET state = 'running', reason = NULL, attempts = attempts + 1,"
                " source = excluded.source, item_id = excluded.item_id, location = excluded.location,"
                " stamp = excluded.stamp, run_id = excluded.run_id, reported_in = NULL, updated_at = excluded.updated_at",
                (entry["key"], entry["source"], entry["item_id"], entry["location"], entry["stamp"],
                 entry.get("run_id"), at, at))
        return self.ledger_entry(entry["key"])

    def ledger_update(self, key: str, fields: dict) -> None:
        fields = dict(fields)
        if "result" in fields:
            fields["result"] = json.dumps(fields["result"], ensure_ascii=False, default=str)
        fields["updated_at"] = now()
        with self.transaction():
            if self.db.execute(f"UPDATE batch_ledger SET {', '.join(f'{k} = ?' for k in fields)} WHERE key = ?",
                               (*fields.values(), key)).rowcount == 0:
                raise NotFoundError(f"ledger entry {key} does not exist")

    def ledger_entries(self, state: str | None = None, unreported: bool = False) -> list[dict]:
        sql, params = "SELECT * FROM batch_ledger WHERE 1 = 1", []
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if unreported:
            sql += " AND reported_in IS NULL"
        return [self._ledger(r) for r in self.db.execute(sql + " ORDER BY first_seen_at, key", params)]

    def ledger_mark_reported(self, keys: list[str], digest_id: str) -> None:
        with self.transaction():
            self.db.executemany("UPDATE batch_ledger SET reported_in = ? WHERE key = ?",
                                [(digest_id, k) for k in keys])
