#!/usr/bin/env python
"""The two store backends on the same data: region-check latency and scan throughput.

1. Region checks: the province-sized store of ``bench_check.py`` (10,000 red-line
   polygons, 100,000 flags, 24 scan footprints; built by its ``build()``, cached) and a
   PostGIS copy of it (the same rows through the Store interface, cached too). The same
   county-sized regions are checked on both, through the engine (``check_region``) and
   through the HTTP API; p50/p95/max in ms, and whether both answered the same.
2. Scans: the synthetic change raster of ``bench_scan.py`` (its ``prepare_synthetic``,
   cached) scanned into an empty store of each backend holding its red-line layer:
   first as a new product (every conflict a new flag), then a copy of it under another
   product id (every conflict an observation of an existing flag). Seconds, patches/s,
   Mpx/s, and the part spent in the write transaction.

    python scripts/bench_store.py [--pg-url postgresql:///redline_bench] [--scan-size 8000]

PostGIS: the databases are created on the server of ``--pg-url`` (from the template
``redline_test_template`` of scripts/provision_postgis.sh when present). No timing is
asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import bench_check  # noqa: E402  (its builders, not copies)
import bench_scan  # noqa: E402

from redline.auth import OPERATOR  # noqa: E402
from redline.check import check_region  # noqa: E402
from redline.layers import LoadReport  # noqa: E402
from redline.store import FlagFilter, open_store  # noqa: E402

ISO = "2026-06-01T00:00:00+00:00"


# --- PostGIS databases ---------------------------------------------------------------------


def _with_db(url: str, name: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}/{name}" + (f"?{p.query}" if p.query else "")


def pg_database(base_url: str, name: str, fresh: bool) -> str:
    """URL of database ``name`` on the server of ``base_url`` (re)created with postgis when asked."""
    import psycopg

    with psycopg.connect(_with_db(base_url, "postgres"), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not fresh:
            return _with_db(base_url, name)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        template = admin.execute("SELECT 1 FROM pg_database WHERE datname = 'redline_test_template'").fetchone()
        admin.execute(f'CREATE DATABASE "{name}"' + (" TEMPLATE redline_test_template" if template else ""))
    url = _with_db(base_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return url


def copy_store(src, dst) -> None:
    """Every zone, flag and scan of ``src`` into the empty ``dst``, in the same order (same ids)."""
    zones = src.zones(("redline",))
    dst.add_layer_version(LoadReport("redline", "bench", "EPSG:4326", "-", len(zones), zones))
    with dst.transaction():
        for f in src.flags():
            geom = f.pop("geometry")
            f.pop("id")
            dst.insert_flag(f, geom)
        for s in src.scans():
            footprint = s.pop("footprint")
            for k in ("started_at", "finished_at"):  # bench_check writes "-"; PostGIS wants timestamps
                s[k] = s[k] if s[k][:1].isdigit() else ISO
            dst.insert_scan(s, footprint)
    dst.conn.execute("VACUUM ANALYZE")


# --- region checks -------------------------------------------------------------------------


def regions(n: int) -> list:
    """The county-sized regions of bench_check.py (the same seed, so the same places)."""
    rng = np.random.default_rng(1)
    out = []
    w, h = bench_check.COUNTY
    for _ in range(n):
        x, y = (
            rng.uniform(bench_check.WEST, bench_check.EAST - w),
            rng.uniform(bench_check.SOUTH, bench_check.NORTH - h),
        )
        out.append(bench_check.blob(rng, x + w / 2, y + h / 2, h / 2, 64))
    return out


def time_checks(url: str, regs: list) -> dict:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from redline.auth import create_token
    from redline.config import Settings

    store = open_store(url)
    check_region(store, regs[0], principal=OPERATOR)  # warm-up (imports, caches), not timed
    engine_ms, answers = [], []
    for region in regs:
        t = time.perf_counter()
        answer = check_region(store, region, principal=OPERATOR)
        engine_ms.append((time.perf_counter() - t) * 1000)
        answers.append(json.dumps(answer.model_dump(include={"summary", "zones", "flags", "scans"}), sort_keys=True))
    token = create_token(store, "bench", "viewer")
    store.close()
    http_ms = []
    with TestClient(create_app(Settings(database_url=url))) as client:
        h = {"Authorization": f"Bearer {token}"}
        client.post("/checks", json=shapely.geometry.mapping(regs[0]), headers=h).raise_for_status()
        for region in regs:
            body = shapely.geometry.mapping(region)
            t = time.perf_counter()
            client.post("/checks", json=body, headers=h).raise_for_status()
            http_ms.append((time.perf_counter() - t) * 1000)
    return {"engine": engine_ms, "http": http_ms, "answers": answers}


# --- scans ---------------------------------------------------------------------------------


@contextmanager
def timed_transactions(store, box: list):
    """Add the wall time of the store's outermost transactions to ``box[0]``."""
    real = store.transaction

    @contextmanager
    def transaction():
        outer = store._depth == 0
        t = time.perf_counter()
        with real():
            yield store
        if outer:
            box[0] += time.perf_counter() - t

    store.transaction = transaction
    try:
        yield
    finally:
        store.transaction = real


def second_product(spec: dict) -> dict:
    """The same pixels under another product id: a copy with one more tag, so another checksum."""
    import rasterio

    src = Path(spec["product"]["path"])
    copy = src.with_name("change-again.tif")
    if not copy.exists():
        shutil.copy(src, copy.with_suffix(".part.tif"))
        with rasterio.open(copy.with_suffix(".part.tif"), "r+") as ds:
            ds.update_tags(REDLINE_PRODUCT_ID="bench-again")
        copy.with_suffix(".part.tif").replace(copy)
    return {**spec["product"], "product_id": "bench-again", "path": str(copy), "acquired_after": "2026-09-30"}


def time_scans(url: str, spec: dict, pixels: int) -> list[dict]:
    from redline.change import ChangeProduct
    from redline.config import Settings
    from redline.layers import read_layer
    from redline.scan import scan_product

    settings = Settings(mmu_ha=spec["mmu_ha"])
    store = open_store(url)
    store.add_layer_version(read_layer("redline", spec["redline"]))
    out = []
    for product in (spec["product"], second_product(spec)):
        box = [0.0]
        with timed_transactions(store, box):
            t = time.perf_counter()
            result = scan_product(store, ChangeProduct(**product), settings=settings)
            seconds = time.perf_counter() - t
        out.append(
            {
                "product": product["product_id"],
                "seconds": seconds,
                "write_s": box[0],
                "patches": result.patches,
                "conflicts": result.conflicts + result.permitted,
                "new": len(result.new_flags),
                "observed": len(result.observed_flags),
                "patches_per_s": result.patches / seconds,
                "mpx_per_s": pixels / seconds / 1e6,
            }
        )
    store.close()
    return out


# --- main ----------------------------------------------------------------------------------


def pct(values, q) -> float:
    return float(np.percentile(values, q))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--pg-url",
        default="postgresql:///redline_bench",
        help="a PostGIS server (its database name is the prefix of the benchmark databases)",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--checks", type=int, default=40)
    ap.add_argument("--scan-size", type=int, default=8000, help="side of the synthetic change raster, pixels")
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--skip-scans", action="store_true")
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    prefix = urlsplit(args.pg_url).path.lstrip("/") or "redline_bench"
    lines = []

    if not args.skip_checks:
        db = args.workdir / f"check-{args.zones}-{args.flags}.db"
        if not db.exists():
            t = time.perf_counter()
            bench_check.build(db.with_suffix(".tmp"), args.zones, args.flags)
            db.with_suffix(".tmp").rename(db)
            print(f"built {db} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        sqlite_url = f"sqlite:///{db}"
        pg_url = pg_database(args.pg_url, f"{prefix}_check_{args.zones}_{args.flags}", fresh=False)
        pg = open_store(pg_url)
        if pg.count_flags(FlagFilter()) != args.flags:
            pg.close()
            pg_url = pg_database(args.pg_url, f"{prefix}_check_{args.zones}_{args.flags}", fresh=True)
            pg = open_store(pg_url)
            t = time.perf_counter()
            src = open_store(sqlite_url)
            copy_store(src, pg)
            src.close()
            print(f"copied into {pg_url} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        parts = pg.conn.execute("SELECT COUNT(*) AS n FROM zone_parts").fetchone()["n"]
        pg.close()
        regs = regions(args.checks)
        results = {name: time_checks(url, regs) for name, url in (("sqlite", sqlite_url), ("postgis", pg_url))}
        same = results["sqlite"]["answers"] == results["postgis"]["answers"]
        flags = [json.loads(a)["summary"]["flags"] for a in results["sqlite"]["answers"]]
        zones = [json.loads(a)["summary"]["zones_touched"] for a in results["sqlite"]["answers"]]
        lines += [
            f"region checks: {args.zones:,} red-line polygons ({parts:,} subdivided parts in PostGIS), "
            f"{args.flags:,} flags, 24 scan footprints",
            f"{args.checks} county-sized regions (~{bench_check.COUNTY[0]} x {bench_check.COUNTY[1]} deg), "
            f"median {statistics.median(flags):.0f} flags and {statistics.median(zones):.0f} zones inside; "
            f"identical answers on both backends: {'yes' if same else 'NO'}",
            f"{'backend':<9} {'path':<7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}",
        ]
        for name in ("sqlite", "postgis"):
            for path in ("engine", "http"):
                ms = results[name][path]
                lines.append(f"{name:<9} {path:<7} {pct(ms, 50):8.1f} {pct(ms, 95):8.1f} {max(ms):8.1f}")
        lines.append("")

    if not args.skip_scans:
        spec = bench_scan.prepare_synthetic(args.workdir, args.scan_size, 0.1)
        bench_scan.warm_page_cache(spec)
        pixels = args.scan_size**2
        scans = {}
        sq = Path(spec["db"]).with_name("store-bench.db")
        for p in (sq, sq.with_name(sq.name + "-wal"), sq.with_name(sq.name + "-shm")):
            p.unlink(missing_ok=True)
        scans["sqlite"] = time_scans(f"sqlite:///{sq}", spec, pixels)
        scans["postgis"] = time_scans(pg_database(args.pg_url, f"{prefix}_scan", fresh=True), spec, pixels)
        lines += [
            f"scans: {spec['description']}, {pixels / 1e6:.0f} Mpx",
            f"{'backend':<9} {'scan':<12} {'seconds':>8} {'write s':>8} {'patches':>8} {'flags':>12} "
            f"{'patch/s':>8} {'Mpx/s':>7}",
        ]
        for name in ("sqlite", "postgis"):
            for label, r in zip(("new product", "same again"), scans[name]):
                made = f"{r['new']} new" if r["new"] else f"{r['observed']} obs"
                lines.append(
                    f"{name:<9} {label:<12} {r['seconds']:8.2f} {r['write_s']:8.2f} {r['patches']:>8} "
                    f"{made:>12} {r['patches_per_s']:8.0f} {r['mpx_per_s']:7.1f}"
                )
        lines.append("'write s': time inside the scan's write transaction (flag matching, inserts, commit)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
