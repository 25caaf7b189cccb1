#!/usr/bin/env python
"""Region-check latency on a province-sized embedded store.

Builds (once, cached in --workdir) a SQLite store with 10,000 red-line polygons,
100,000 flags and 24 scan footprints over a synthetic province (6 x 4 degrees
around Inner Mongolia), then times checks over county-sized regions (~50 x 55 km)
at random places: through the engine (``check_region``) and through the HTTP API
(FastAPI TestClient, so JSON parsing and serialisation are included).
Prints p50/p95/max in milliseconds. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redline.auth import OPERATOR  # noqa: E402
from redline.check import check_region  # noqa: E402
from redline.layers import LoadReport, Zone  # noqa: E402
from redline.store import open_store  # noqa: E402

WEST, SOUTH, EAST, NORTH = 106.0, 38.0, 112.0, 42.0
COUNTY = (0.6, 0.5)  # degrees: ~51 x 55 km at 40 N, ~2,800 km2


def blob(rng, cx, cy, radius, n):
    t = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.6, 1.0, n)
    return shapely.Polygon(np.column_stack([cx + r * np.cos(t) / np.cos(np.radians(cy)), cy + r * np.sin(t)]))


def build(path: Path, n_zones: int, n_flags: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    store = open_store(f"sqlite:///{path}")
    zones = []
    for i in range(n_zones):
        cx, cy = rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)
        geom = shapely.make_valid(blob(rng, cx, cy, rng.uniform(0.01, 0.06), 48))
        zones.append(
            Zone("redline", f"RL-{i:05d}", "redline", geom, f"RL-{i:05d}", {"function_type": "防风固沙"}, area_ha=0.0)
        )
    store.add_layer_version(LoadReport("redline", "bench", "EPSG:4326", "-", n_zones, zones))
    severities = ("low", "medium", "high", "critical")
    activities = ("mining", "transport", "construction", "farmland", "energy")
    with store.transaction():
        for i in range(n_flags):
            cx, cy = rng.uniform(WEST, EAST), rng.uniform(SOUTH, NORTH)
            side = rng.uniform(0.001, 0.003)
            day = (date(2025, 1, 1) + timedelta(days=int(rng.integers(0, 600)))).isoformat()
            store.insert_flag(
                {
                    "status": "new",
                    "severity": severities[i % 4],
                    "activity": activities[i % 5],
                    "confidence": "high",
                    "score": None,
                    "area_ha": 3.0,
                    "area_mu": 45.0,
                    "first_seen": day,
                    "last_seen": day,
                    "n_observations": 1,
                    "zone_layer": "redline",
                    "zone_name": "RL",
                    "zone_regime": "redline",
                    "admin_code": None,
                    "admin_name": None,
                    "permit_id": None,
                    "layer_versions": {"redline": 1},
                    "rules_version": "bench",
                    "rule": None,
                },
                shapely.box(cx, cy, cx + side, cy + side),
            )
        # 24 scenes of 1 x 1 degree with ragged cloud holes
        for k, (x, y) in enumerate((x, y) for x in range(106, 112) for y in range(38, 42)):
            holes = shapely.union_all(
                [blob(rng, x + rng.uniform(0.2, 0.8), y + rng.uniform(0.2, 0.8), 0.1, 32) for _ in range(3)]
            )
            footprint = shapely.difference(shapely.box(x, y, x + 1, y + 1), holes)
            store.insert_scan(
                {
                    "checksum": f"bench-{k}",
                    "product_id": f"S2-{k}",
                    "mode": "class",
                    "sensor": "Sentinel-2 MSI",
                    "acquired_before": "2025-06-01",
                    "acquired_after": "2026-06-01",
                    "files": [],
                    "started_at": "-",
                    "finished_at": "-",
                    "state": "done",
                    "stats": {},
                    "layer_versions": {},
                    "rules_version": "bench",
                    "observed_fraction": 0.9,
                },
                footprint,
            )
    store.close()


def sqlite_store(workdir: Path, zones: int, flags: int) -> str:
    """The URL of the benchmark store in ``workdir``, built there first when missing."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / f"check-{zones}-{flags}.db"
    if not db.exists():
        t = time.perf_counter()
        build(db.with_suffix(".tmp"), zones, flags)
        db.with_suffix(".tmp").rename(db)
        print(f"built {db} in {time.perf_counter() - t:.1f} s")
    return f"sqlite:///{db}"


def percentile(values, q):
    return float(np.percentile(values, q))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--checks", type=int, default=40)
    args = ap.parse_args(argv)
    url = sqlite_store(args.workdir, args.zones, args.flags)

    rng = np.random.default_rng(1)
    regions = []
    for _ in range(args.checks):
        x, y = rng.uniform(WEST, EAST - COUNTY[0]), rng.uniform(SOUTH, NORTH - COUNTY[1])
        regions.append(blob(rng, x + COUNTY[0] / 2, y + COUNTY[1] / 2, COUNTY[1] / 2, 64))

    store = open_store(url)
    engine_ms, sizes = [], []
    for region in regions:
        t = time.perf_counter()
        answer = check_region(store, region, principal=OPERATOR)
        engine_ms.append((time.perf_counter() - t) * 1000)
        sizes.append((answer.summary.flags, answer.summary.zones_touched))
    store.close()

    from fastapi.testclient import TestClient

    from api.app import create_app
    from redline.auth import create_token
    from redline.config import Settings

    store = open_store(url)
    token = create_token(store, "bench", "viewer")
    store.close()
    api_ms = []
    with TestClient(create_app(Settings(database_url=url))) as client:
        # warm-up, not timed: starts the worker processes that do the request work
        client.post(
            "/checks", json=shapely.geometry.mapping(regions[0]), headers={"Authorization": f"Bearer {token}"}
        ).raise_for_status()
        for region in regions:
            body = shapely.geometry.mapping(region)
            t = time.perf_counter()
            r = client.post("/checks", json=body, headers={"Authorization": f"Bearer {token}"})
            api_ms.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()

    flags = [s[0] for s in sizes]
    zones = [s[1] for s in sizes]
    print(
        f"store: {args.zones:,} red-line polygons, {args.flags:,} flags, "
        f"24 scan footprints ({Path(url.removeprefix('sqlite:///')).stat().st_size / 1e6:.0f} MB)"
    )
    print(
        f"{args.checks} county-sized checks (~{COUNTY[0]} x {COUNTY[1]} deg): median {statistics.median(flags):.0f} "
        f"flags and {statistics.median(zones):.0f} zones inside"
    )
    print(f"{'path':<8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, ms in (("engine", engine_ms), ("http", api_ms)):
        print(f"{name:<8} {percentile(ms, 50):8.1f} {percentile(ms, 95):8.1f} {max(ms):8.1f}")


if __name__ == "__main__":
    main()
