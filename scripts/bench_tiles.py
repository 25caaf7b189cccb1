#!/usr/bin/env python
"""Vector-tile latency on the province-sized benchmark store.

Uses the store that scripts/bench_check.py builds (10,000 red-line polygons, 100,000 flags
over 6 x 4 degrees; built once, cached in --workdir), or any store given with --db (a
PostGIS URL holding the same data, for instance). For each zoom 6..14, renders --tiles
tiles at random places across the flag extent, for the flags and the red-line collections:
through the engine (redline.tiles.render, every tile built afresh) and through the HTTP API
(FastAPI TestClient: authentication, the ETag, the response; zone tiles go through the API's
cache of encoded zone tiles, so a low-zoom tile drawn twice in the sample is a cache hit).
Prints p50/p95/max in milliseconds per zoom and overall, and the median tile size. No timing
is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_check import EAST, NORTH, SOUTH, WEST, build  # noqa: E402

from redline import tiles  # noqa: E402
from redline.store import open_store  # noqa: E402

ZOOMS = range(6, 15)


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def sample_tiles(rng, n: int):
    for z in ZOOMS:
        for _ in range(n):
            t = tiles.TMS.tile(rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH), z)
            yield tiles.TileRef(z, t.x, t.y)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--db", help="store URL (default: the bench_check SQLite store, built if missing)")
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--tiles", type=int, default=20, help="tiles per zoom")
    ap.add_argument("--collections", default="flags,redline")
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args(argv)
    url = args.db
    if url is None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        db = args.workdir / f"check-{args.zones}-{args.flags}.db"
        if not db.exists():
            t = time.perf_counter()
            build(db.with_suffix(".tmp"), args.zones, args.flags)
            db.with_suffix(".tmp").rename(db)
            print(f"built {db} in {time.perf_counter() - t:.1f} s")
        url = f"sqlite:///{db}"
    rng = np.random.default_rng(3)
    refs = list(sample_tiles(rng, args.tiles))
    collections = args.collections.split(",")

    store = open_store(url)
    engine: dict[tuple[str, int], list[float]] = {}
    sizes: dict[tuple[str, int], list[int]] = {}
    for cid in collections:
        tiles.render(store, cid, refs[-1])  # warm-up (imports, caches), not timed
        for ref in refs:
            t = time.perf_counter()
            body = tiles.render(store, cid, ref)
            engine.setdefault((cid, ref.z), []).append((time.perf_counter() - t) * 1000)
            sizes.setdefault((cid, ref.z), []).append(len(body))
    store.close()

    http: dict[tuple[str, int], list[float]] = {}
    if not args.no_http:
        from fastapi.testclient import TestClient

        from api.app import create_app
        from redline.auth import create_token
        from redline.config import Settings

        store = open_store(url)
        token = create_token(store, "bench-tiles", "viewer")
        store.close()
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(Settings(database_url=url))) as client:
            for cid in collections:
                for ref in refs:
                    path = f"/collections/{cid}/tiles/WebMercatorQuad/{ref.z}/{ref.y}/{ref.x}"
                    t = time.perf_counter()
                    r = client.get(path, headers=headers)
                    http.setdefault((cid, ref.z), []).append((time.perf_counter() - t) * 1000)
                    assert r.status_code in (200, 204), r.text

    print(
        f"store: {url.split('@')[-1]}; {args.tiles} random tiles per zoom across {WEST}..{EAST} E, {SOUTH}..{NORTH} N"
    )
    print(
        f"{'collection':<10} {'zoom':>4} {'engine p50':>10} {'p95':>8} {'http p50':>9} {'p95':>8} {'max':>8} "
        f"{'KB p50':>7}"
    )
    for cid in collections:
        for z in ZOOMS:
            e, h = engine[(cid, z)], http.get((cid, z), [])
            print(
                f"{cid:<10} {z:>4} {pct(e, 50):10.1f} {pct(e, 95):8.1f} {pct(h, 50):9.1f} {pct(h, 95):8.1f} "
                f"{max(h or e):8.1f} {statistics.median(sizes[(cid, z)]) / 1000:7.1f}"
            )
        e = [v for z in ZOOMS for v in engine[(cid, z)]]
        h = [v for z in ZOOMS for v in http.get((cid, z), [])]
        print(
            f"{cid:<10} {'6-14':>4} {pct(e, 50):10.1f} {pct(e, 95):8.1f} {pct(h, 50):9.1f} {pct(h, 95):8.1f} "
            f"{max(h or e):8.1f}"
        )


if __name__ == "__main__":
    main()
