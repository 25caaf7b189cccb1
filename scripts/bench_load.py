#!/usr/bin/env python
"""Loopback load: checks and item reads against ``redline serve`` while a scan writes.

Builds the sample scenario (scripts/make_sample_data.py, layers loaded, its products
scanned) into --workdir, starts ``redline serve`` on a free port, then for --seconds runs
--clients concurrent clients, each alternating ``POST /checks`` (a small region) and
``GET /collections/flags/items``, while ``redline scan`` runs in a subprocess on one new
variant of a change product after another (same pixels, new bytes: each is a new scan
that writes observations), so readers meet the writer's transactions.

Prints, from this one run: p50/p95/max latency per endpoint, throughput, errors (any
status other than 200, or a failed request), and how many scans were written meanwhile.
Nothing here is asserted; goal: 0 errors, p95 <= 150 ms at 8 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redline.auth import create_token  # noqa: E402
from redline.store import open_store  # noqa: E402
from tests.live import LiveServer  # noqa: E402
from tests.scenario import build  # noqa: E402

REDLINE = str(Path(sys.executable).with_name("redline"))
# a small inspection region (~1.7 x 2.2 km) inside the sample's inspection area
REGION = {
    "type": "Feature",
    "properties": {},
    "geometry": {
        "type": "Polygon",
        "coordinates": [
            [[108.700, 39.840], [108.720, 39.840], [108.720, 39.860], [108.700, 39.860], [108.700, 39.840]]
        ],
    },
}


def variants(out: Path, n: int) -> list[Path]:
    """Copies of change_2026-09.tif that differ by one metadata tag: new checksums, same pixels."""
    import rasterio

    src, sidecar = out / "change_2026-09.tif", json.loads((out / "change_2026-09.json").read_text())
    made = []
    for i in range(n):
        path = out / f"bench_{i:03d}.tif"
        shutil.copy(src, path)
        with rasterio.open(path, "r+") as ds:
            ds.update_tags(bench_variant=str(i))
        day = 19 + i % 10
        (out / f"bench_{i:03d}.json").write_text(
            json.dumps({**sidecar, "product_id": f"BENCH-{i:03d}", "acquired_after": f"2026-09-{day:02d}"})
        )
        made.append(path)
    return made


class Writer(threading.Thread):
    """``redline scan`` of one variant after another until stopped."""

    def __init__(self, env: dict, products: list[Path]):
        super().__init__(daemon=True)
        self.env, self.products = env, products
        self.stop = threading.Event()
        self.done, self.failed, self.seconds = 0, [], []

    def run(self) -> None:
        for product in self.products:
            if self.stop.is_set():
                return
            t0 = time.perf_counter()
            proc = subprocess.run([REDLINE, "scan", str(product)], env=self.env, capture_output=True, text=True)
            self.seconds.append(time.perf_counter() - t0)
            if proc.returncode == 0:
                self.done += 1
            else:
                self.failed.append(proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"])


async def client(base: str, token: str, until: float, record: dict, offset: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    calls = [
        ("POST /checks", "POST", "/checks", {"json": REGION}),
        ("GET /collections/flags/items", "GET", "/collections/flags/items?limit=50", {}),
    ]
    i = offset
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
        while time.monotonic() < until:
            name, method, path, kw = calls[i % 2]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await http.request(method, path, **kw)
                ok = r.status_code == 200
                why = None if ok else f"{r.status_code} {r.text[:120]}"
            except httpx.HTTPError as exc:
                ok, why = False, f"{type(exc).__name__}: {exc}"
            record[name]["ms"].append((time.perf_counter() - t0) * 1000)
            if not ok:
                record[name]["errors"].append(why)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workdir", type=Path, help="Where the scenario is built (default: a temp folder).")
    ap.add_argument("--no-writer", action="store_true", help="Readers only (no scan meanwhile).")
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="redline-load-"))
    work.mkdir(parents=True, exist_ok=True)
    out = work / "scenario"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    print(f"building the sample scenario in {out} ...", flush=True)
    _, url = build(out)
    store = open_store(url)
    token = create_token(store, "bench", "admin")
    n_flags = store.count_flags()
    store.close()
    products = variants(out, 200)

    env = {"REDLINE_EVIDENCE_DIR": str(work / "evidence"), "REDLINE_DATA_DIR": str(out)}
    server = LiveServer(url, work / "serve.log", env)
    try:
        server.start()
    except RuntimeError as e:
        sys.exit(str(e))
    base = server.base
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            for _ in range(3):  # warm-up: imports, first connections
                http.post("/checks", json=REGION)
                http.get("/collections/flags/items?limit=50")

        writer = Writer(server.env, [] if args.no_writer else products)
        record = {n: {"ms": [], "errors": []} for n in ("POST /checks", "GET /collections/flags/items")}
        print(
            f"{args.clients} clients for {args.seconds:g} s against {base} ({n_flags} flags)"
            f"{'' if args.no_writer else ', redline scan writing meanwhile'} ...",
            flush=True,
        )
        writer.start()
        t0 = time.monotonic()
        until = t0 + args.seconds

        async def all_clients():
            await asyncio.gather(*(client(base, token, until, record, i) for i in range(args.clients)))

        asyncio.run(all_clients())
        elapsed = time.monotonic() - t0
        writer.stop.set()
        writer.join()
    finally:
        server.stop()

    print(f"\n{'endpoint':32} {'requests':>8} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'errors':>6}")
    total, errors = 0, 0
    for name, r in record.items():
        ms = r["ms"]
        total += len(ms)
        errors += len(r["errors"])
        print(
            f"{name:32} {len(ms):8d} {len(ms) / elapsed:7.1f} {pct(ms, 50):8.1f} {pct(ms, 95):8.1f} "
            f"{max(ms):8.1f} {len(r['errors']):6d}"
        )
    print(f"{'all':32} {total:8d} {total / elapsed:7.1f} {'':8} {'':8} {'':8} {errors:6d}")
    if not args.no_writer:
        scan_s = f", {statistics.median(writer.seconds):.2f} s each (median)" if writer.seconds else ""
        print(f"scans written meanwhile: {writer.done}{scan_s}; failed: {len(writer.failed)}")
        for f in writer.failed[:3]:
            print(f"  scan failed: {f}")
    for name, r in record.items():
        for why in sorted(set(r["errors"]))[:3]:
            print(f"  {name} error: {why}")
    tracebacks = (work / "serve.log").read_text(errors="replace").count("Traceback")
    print(f"server log: {tracebacks} traceback(s) ({work / 'serve.log'})")


if __name__ == "__main__":
    main()
