#!/usr/bin/env python
"""The supervision map in headless Chromium on the 100,000-flag benchmark store.

Uses the store of ``scripts/bench_check.py`` (10,000 red lines, 100,000 flags over a synthetic
province; built once, cached in --workdir), starts ``redline serve`` on a free port, and measures
in Debian's chromium (Playwright, never a downloaded browser):

- first render: from navigation to the first complete map render with flags (tiles loaded, flags
  drawn), cold (new browser context) and warm (the same context, page reloaded);
- redraw after a filter change: from ticking a severity box to the map drawing only that severity
  (the map filters on the client: the flag tiles carry severity), and to the list answering;
- a trace of the last cold load (navigation-relative, as the test driver saw the requests): when the
  first tile was asked for, when the flag tiles and all tiles were in, when the map was idle; and
  the page's own marks (map created, style parsed, view known, sources added, first idle).

Prints the figures (medians of --runs runs). No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_check import sqlite_store  # noqa: E402

from redline.auth import create_token  # noqa: E402
from redline.store import open_store  # noqa: E402
from tests.live import CHROMIUM, CHROMIUM_ARGS, LiveServer  # noqa: E402

IDLE = """(flags) => { const r = window.redline; return r && r.map && r.map.loaded() && r.map.areTilesLoaded()
            && !r.map.isMoving() && r.flagMap.renderedFlagIds().length > 0
            && (!flags || r.map.queryRenderedFeatures({layers: r.flagMap.drawnLayers()})
                  .every(f => flags.includes(f.properties.severity))); }"""

# set when the flag list is redrawn (the API's answer to the new filters)
LIST_WATCH = """() => { window.__listChanged = false;
  new MutationObserver(() => { window.__listChanged = true; })
    .observe(document.querySelector('.flag-list'), { childList: true }); }"""
# in the page, without the test driver's overhead: from the checkbox's change event to the end of
# the first map frame that is complete (tiles in) and draws only the wanted severity
IN_PAGE = """(wanted) => { const r = window.redline, m = r.map; window.__redraw = null;
  document.querySelector('fieldset[data-key=severity]').addEventListener('change', () => {
    const t0 = performance.now();
    const check = () => {
      const f = m.queryRenderedFeatures({layers: r.flagMap.drawnLayers()});
      if (m.loaded() && m.areTilesLoaded() && f.length && f.every(x => wanted.includes(x.properties.severity))) {
        window.__redraw = (performance.now() - t0) / 1000; m.off('render', check);
      }
    };
    m.on('render', check);
  }, {once: true}); }"""


# the page's own milestones (Performance API marks of web/src/map.js), in seconds from navigation
MARKS = """() => Object.fromEntries(performance.getEntriesByType('mark')
  .filter((m) => m.name.startsWith('map:')).map((m) => [m.name, m.startTime / 1000]))"""


def _trace(seen: list[tuple[str, str, float]], idle: float) -> dict:
    """Milestones of one load, in seconds from navigation (as the test driver saw them)."""
    tiles = [(e, path, s) for e, path, s in seen if "/tiles/" in path]
    flags = [x for x in tiles if "/collections/flags/" in x[1]]

    def first(rows, event):
        return min((s for e, _, s in rows if e == event), default=None)

    def last(rows, event):
        return max((s for e, _, s in rows if e == event), default=None)

    app = [s for e, path, s in seen if e == "requestfinished" and path.startswith("/app/assets/index-")]
    return {
        "app script in": app[0] if app else None,
        "first list in": first([x for x in seen if x[1] == "/collections/flags/items"], "requestfinished"),
        "first tile asked": first(tiles, "request"),
        "flag tiles in": last(flags, "requestfinished"),
        "all tiles in": last(tiles, "requestfinished"),
        "flag tiles": sum(e == "request" for e, _, _ in flags),
        "tiles": sum(e == "request" for e, _, _ in tiles),
        "complete render": idle,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"))
    ap.add_argument("--zones", type=int, default=10_000)
    ap.add_argument("--flags", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args(argv)
    url = sqlite_store(args.workdir, args.zones, args.flags)
    store = open_store(url)
    token = create_token(store, "bench-web", "admin")
    store.close()

    server = LiveServer(url, args.workdir / "serve.log", {"REDLINE_EVIDENCE_DIR": str(args.workdir / "evidence")})
    try:
        server.start()
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    base = server.base
    try:
        from playwright.sync_api import sync_playwright

        first_cold, first_warm, redraw, relist, in_page = [], [], [], [], []
        trace: dict = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for _ in range(args.runs):
                ctx = browser.new_context(viewport={"width": 1440, "height": 900})
                page = ctx.new_page()
                page.set_default_timeout(60_000)
                done = []  # (path, seconds from request to response end) of the first load
                seen: list[tuple[str, str, float]] = []  # (event, path, seconds from navigation)
                page.on(
                    "requestfinished",
                    lambda r, done=done: done.append(
                        (r.url.split("?")[0].removeprefix(base), r.timing["responseEnd"] / 1000)
                    ),
                )
                t = time.perf_counter()
                for event in ("request", "requestfinished"):
                    page.on(
                        event,
                        lambda r, e=event, seen=seen, t=t: seen.append(
                            (e, r.url.split("?")[0].removeprefix(base), time.perf_counter() - t)
                        ),
                    )
                page.goto(f"{base}/#token={token}")
                page.wait_for_function(IDLE, arg=None, polling=16)
                first_cold.append(time.perf_counter() - t)
                trace = _trace(seen, first_cold[-1])
                marks = page.evaluate(MARKS)
                first_requests = list(done)
                t = time.perf_counter()
                page.reload()
                page.wait_for_function(IDLE, arg=None, polling=16)
                first_warm.append(time.perf_counter() - t)
                page.evaluate(LIST_WATCH)
                page.evaluate(IN_PAGE, ["critical"])
                t = time.perf_counter()
                page.locator("fieldset[data-key=severity] input[value=critical]").check()
                page.wait_for_function(IDLE, arg=["critical"], polling=16)
                redraw.append(time.perf_counter() - t)
                page.wait_for_function("() => window.__listChanged", polling=16)
                relist.append(time.perf_counter() - t)
                page.wait_for_function("() => window.__redraw !== null", polling=16)
                in_page.append(page.evaluate("() => window.__redraw"))
                n = page.evaluate("() => window.redline.flagMap.renderedFlagIds().length")
                zoom = page.evaluate("() => window.redline.map.getZoom()")
                ctx.close()
            browser.close()
    finally:
        server.stop()
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
        f"{', '.join(f'{x:.2f}' for x in redraw)}); the list answered: median {med(relist):.2f} s"
    )
    print(
        f"redraw measured in the page (change event to the first complete frame): median {med(in_page):.2f} s  "
        f"(runs: {', '.join(f'{x:.2f}' for x in in_page)})"
    )
    print(
        "the page's marks in that load (s from navigation): "
        + "; ".join(f"{k.removeprefix('map:')} {v:.2f}" for k, v in sorted(marks.items(), key=lambda kv: kv[1]))
    )
    print(
        "trace of the last cold load (s from navigation): "
        + "; ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in trace.items() if v is not None)
    )


if __name__ == "__main__":
    main()
