#!/usr/bin/env python
"""Vector-tile latency on the province-sized benchmark store, on both stores.

Uses the store that scripts/bench_check.py builds (10,000 red-line polygons, 100,000 flags
over 6 x 4 degrees; built once, cached in --workdir) and, with ``--postgis URL``, a PostGIS
database holding the same data (filled from the SQLite store when it holds no flag yet);
``--db URL`` measures any other store instead. For each zoom 6..14, renders --tiles tiles at
random places across the flag extent, for the flags and the red-line collections:

- engine, cold: redline.tiles.render with no tile kept in memory (the flags' points of the
  data version, redline.tiles.FlagPoints, are loaded once, timed apart; zone tiles up to
  redline.tiles.PRERENDER_ZOOM come from the store's pre-rendered tiles, written first as a
  layer load writes them, timed apart);
- http: through the API (FastAPI TestClient: authentication, ETag, the response), as a map
  asks: tiles are kept per data version, so a tile drawn twice in the sample is a hit.

Prints p50/p95/max in milliseconds per zoom and over the sweep, and the median tile size.
No timing is asserted anywhere.
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

from bench_check import EAST, NORTH, SOUTH, WEST, sqlite_store  # noqa: E402

from redline import tiles  # noqa: E402
from redline.store import open_store  # noqa: E402
from redline.store.migrations import upgrade  # noqa: E402

ZOOMS = range(6, 15)


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def sample_tiles(rng, n: int):
    for z in ZOOMS:
        for _ in range(n):
            t = tiles.TMS.tile(rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH), z)
            yield tiles.TileRef(z, t.x, t.y)


def fill(source: str, target: str) -> None:
    """Copy the red lines and the flags of ``source`` into the empty store ``target``."""
    from redline.layers import LoadReport
    from redline.store import FlagFilter

    src, dst = open_store(source), open_store(target)
    try:
        if dst.count_flags(FlagFilter()):
            return
        t = time.perf_counter()
        zones = src.zones(("redline",))
        for z in zones:
            z.id = z.layer_version_id = None
            z.attrs.pop("layer_version", None)
        dst.add_layer_version(LoadReport("redline", "bench", "EPSG:4326", "-", len(zones), zones))
        rows = src.flags()
        with dst.transaction():
            for r in rows:
                geometry = r.pop("geometry")
                r.pop("id")
                dst.insert_flag(r, geometry)
        print(f"filled {target.split('@')[-1]} from {source} in {time.perf_counter() - t:.1f} s")
        # the planner's statistics, as autovacuum keeps them on a server: without them it sorts
        # every match of a filter for a page
        dst.conn.execute("VACUUM ANALYZE")
    finally:
        src.close()
        dst.close()


def measure(url: str, refs, collections, http: bool) -> None:
    store = open_store(url)
    points = getattr(tiles, "FLAG_POINTS", None)  # (and runs on an older redline, for a before/after)
    cache = getattr(tiles, "TILES", None) or tiles.ZONE_TILES
    t = time.perf_counter()
    if points is not None:
        points.get(store, store.change_stamp())
    load_ms = (time.perf_counter() - t) * 1000
    prerender = getattr(tiles, "prerender_zone_tiles", None)
    prerendered = []
    for cid in collections:
        if cid != "flags" and prerender is not None:
            t = time.perf_counter()
            done = prerender(store, cid)
            took = time.perf_counter() - t
            if done:
                prerendered.append(
                    f"{cid} zone tiles of zooms 0-{tiles.PRERENDER_ZOOM} pre-rendered in {took:.1f} s"
                    f" ({done['tiles']} of {done['rendered']} tiles not empty, {done['bytes'] / 1e6:.1f} MB)"
                )
    engine: dict[tuple[str, int], list[float]] = {}
    sizes: dict[tuple[str, int], list[int]] = {}
    for cid in collections:
        tiles.render(store, cid, refs[-1])  # warm-up (imports, compiled statements), not timed
        for ref in refs:
            cache.clear()
            t = time.perf_counter()
            body = tiles.render(store, cid, ref)
            engine.setdefault((cid, ref.z), []).append((time.perf_counter() - t) * 1000)
            sizes.setdefault((cid, ref.z), []).append(len(body))
    store.close()

    served: dict[tuple[str, int], list[float]] = {}
    if http:
        from fastapi.testclient import TestClient

        from api.app import create_app
        from redline.auth import create_token
        from redline.config import Settings

        store = open_store(url)
        token = create_token(store, "bench-tiles", "viewer")
        store.close()
        cache.clear()
        if points is not None:
            points.clear()
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(Settings(database_url=url))) as client:
            for cid in collections:
                # a map's first request (loads the flags' points of this data version), not timed
                client.get(f"/collections/{cid}/tiles/WebMercatorQuad/0/0/0", headers=headers)
                for ref in refs:
                    path = f"/collections/{cid}/tiles/WebMercatorQuad/{ref.z}/{ref.y}/{ref.x}"
                    t = time.perf_counter()
                    r = client.get(path, headers=headers)
                    served.setdefault((cid, ref.z), []).append((time.perf_counter() - t) * 1000)
                    assert r.status_code in (200, 204), r.text

    print(f"\nstore: {url.split('@')[-1]}; flag points loaded in {load_ms:.0f} ms")
    for line in prerendered:
        print(line)
    print(
        f"{'collection':<10} {'zoom':>4} {'cold p50':>9} {'p95':>8} {'http p50':>9} {'p95':>8} {'max':>8} {'KB p50':>7}"
    )
    for cid in collections:
        for z in ZOOMS:
            e, h = engine[(cid, z)], served.get((cid, z), [])
            print(
                f"{cid:<10} {z:>4} {pct(e, 50):9.1f} {pct(e, 95):8.1f} {pct(h, 50):9.1f} {pct(h, 95):8.1f} "
                f"{max(h or e):8.1f} {statistics.median(sizes[(cid, z)]) / 1000:7.1f}"
            )
        e = [v for z in ZOOMS for v in engine[(cid, z)]]
        h = [v for z in ZOOMS for v in served.get((cid, z), [])]
        print(
            f"{cid:<10} {'6-14':>4} {pct(e, 50):9.1f} {pct(e, 95):8.1f} {pct(h, 50):9.1f} {pct(h, 95):8.1f} "
            f"{max(h or e):8.1f}"
        )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--db", action="append", help="store URL to measure (repeatable; default: the SQLite store)")
    ap.add_argument("--postgis", help="a PostGIS database to measure too, filled from the SQLite store if empty")
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--tiles", type=int, default=20, help="tiles per zoom")
    ap.add_argument("--collections", default="flags,redline")
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args(argv)
    urls = list(args.db or [])
    if not urls or args.postgis:
        urls.insert(0, sqlite_store(args.workdir, args.zones, args.flags))
    if args.postgis:
        urls.append(args.postgis)
    for url in urls:
        upgrade(url)  # (a store built by an older redline)
    if args.postgis:
        fill(urls[0], args.postgis)
    rng = np.random.default_rng(3)
    refs = list(sample_tiles(rng, args.tiles))
    print(f"{args.tiles} random tiles per zoom across {WEST}..{EAST} E, {SOUTH}..{NORTH} N")
    for url in urls:
        measure(url, refs, args.collections.split(","), not args.no_http)


if __name__ == "__main__":
    main()
