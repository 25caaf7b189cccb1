#!/usr/bin/env python
"""The supervision map in headless Chromium on the 100,000-flag benchmark store.

Uses the store of ``scripts/bench_check.py`` (10,000 red lines, 100,000 flags over a synthetic
province; built once, cached in --workdir), starts ``redline serve`` on a free port, and measures
in Debian's chromium (Playwright, never a downloaded browser):

- first render: from navigation to the first complete map render with flags (tiles loaded, flags
  drawn), cold (new browser context) and warm (the same context, page reloaded);
- redraw after a filter change: from ticking a severity box to the map drawing only that severity.

Prints the figures (medians of --runs runs). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_check import build  # noqa: E402

from redline.auth import create_token  # noqa: E402
from redline.store import open_store  # noqa: E402

CHROMIUM = os.environ.get("REDLINE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = """(flags) => { const r = window.redline; return r && r.map && r.map.loaded() && r.map.areTilesLoaded()
            && !r.map.isMoving() && r.flagMap.renderedFlagIds().length > 0
            && (!flags || r.map.queryRenderedFeatures({layers: ['flags-point', 'flags-fill']})
                  .every(f => flags.includes(f.properties.severity))); }"""


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"check-{args.zones}-{args.flags}.db"
    if not db.exists():
        t = time.perf_counter()
        build(db.with_suffix(".tmp"), args.zones, args.flags)
        db.with_suffix(".tmp").rename(db)
        print(f"built {db} in {time.perf_counter() - t:.1f} s")
    url = f"sqlite:///{db}"
    store = open_store(url)
    token = create_token(store, "bench-web", "admin")
    store.close()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "REDLINE_DATABASE_URL": url, "REDLINE_EVIDENCE_DIR": str(args.workdir / "evidence")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "redline"), "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        from playwright.sync_api import sync_playwright

        first_cold, first_warm, redraw = [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for _ in range(args.runs):
                ctx = browser.new_context(viewport={"width": 1440, "height": 900})
                page = ctx.new_page()
                page.set_default_timeout(60_000)
                done = []  # (path, seconds from request to response end) of the first load
                page.on(
                    "requestfinished",
                    lambda r, done=done: done.append(
                        (r.url.split("?")[0].removeprefix(base), r.timing["responseEnd"] / 1000)
                    ),
                )
                t = time.perf_counter()
                page.goto(f"{base}/#token={token}")
                page.wait_for_function(IDLE, arg=None, polling=16)
                first_cold.append(time.perf_counter() - t)
                first_requests = list(done)
                t = time.perf_counter()
                page.reload()
                page.wait_for_function(IDLE, arg=None, polling=16)
                first_warm.append(time.perf_counter() - t)
                t = time.perf_counter()
                page.locator("fieldset[data-key=severity] input[value=critical]").check()
                page.wait_for_function(IDLE, arg=["critical"], polling=16)
                redraw.append(time.perf_counter() - t)
                n = page.evaluate("() => window.redline.flagMap.renderedFlagIds().length")
                zoom = page.evaluate("() => window.redline.map.getZoom()")
                ctx.close()
            browser.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    med = statistics.median
    tiles: dict[str, list[float]] = {}
    for path, seconds in first_requests:
        if "/tiles/" in path:
            tiles.setdefault(path.split("/")[2], []).append(seconds)
    print(
        f"redline serve; first load (last run): {len(first_requests)} requests; tiles: "
        + "; ".join(f"{cid} {len(v)} (slowest {max(v):.2f} s)" for cid, v in sorted(tiles.items()))
    )
    print(f"store: {args.flags:,} flags, {args.zones:,} red lines; view zoom {zoom:.1f}, {n:,} critical flags drawn")
    print(
        f"first render with flags, new context: median {med(first_cold):.2f} s  (runs: "
        f"{', '.join(f'{x:.2f}' for x in first_cold)})"
    )
    print(f"first render with flags, reload:      median {med(first_warm):.2f} s")
    print(
        f"redraw after a filter change:         median {med(redraw):.2f} s  (runs: "
        f"{', '.join(f'{x:.2f}' for x in redraw)})"
    )


if __name__ == "__main__":
    main()
