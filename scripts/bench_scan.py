#!/usr/bin/env python
"""Benchmark a scan against the cost of merely reading its raster.

For each input raster three phases are timed, on the same windows the scan reads:

- ``raw``: read every window of ``PatchExtractor.windows()`` with
  ``ProductReader.read_raw`` (both rasters in transition mode) and do nothing else:
  the floor set by GDAL's decompression;
- ``extract``: ``PatchExtractor.run()`` fully consumed, plus ``footprint()``;
- ``scan``: ``scan_product`` into a fresh SQLite store holding a red-line layer
  that covers a good part of the raster, so the overlay and the writes count too
  (and the content checksum the scan ledger keys on).

``scan/raw`` and ``extract/raw`` then say how far the engine is from I/O bound.

Each phase runs in a fresh process (this script re-invoked with a hidden
``--phase``) because ``ru_maxrss`` is a high-water mark for the life of a process:
measured in one process, the peak of the extract phase would hide that of the
raw read, and the GDAL block cache filled by one phase would flatter the next.
The child reports its timing and ``ru_maxrss`` as JSON; the parent warms the OS
page cache on the input files first so that every phase starts equally warm.

Inputs:

- a synthetic class-mode change raster, N x N uint8 (10 m, UTM 49N near Hangjin
  Banner, 512 x 512 deflate tiles), ~1 % of pixels changed in blobs, lots and
  roads of 0.1-20 ha plus ~0.05 % salt noise; generated strip by strip from a
  fixed seed and cached in ``--workdir``, with a red-line layer covering ~30 %;
- the real ESA WorldCover 2020/2021 pair of tile N00E006 (São Tomé and
  Príncipe, 36000 x 36000) in transition mode, where present.

    python scripts/bench_scan.py [--synthetic-size N] [--json-out FILE]

No timing is asserted anywhere: this is a measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("raw", "extract", "scan")
SEED = 20260620
GENERATOR_VERSION = 1  # bump when the synthetic raster changes, to invalidate caches

DEFAULT_SIZE = 20000
BLOCK = 512
PIXEL = 10.0
UTM = "EPSG:32649"
ORIGIN = (300000.0, 4420000.0)  # UTM 49N, near lon 108.7, lat 39.85
CHANGE_FRACTION = 0.01
NOISE_FRACTION = 0.0005
REDLINE_FRACTION = 0.30

CLASS_TABLE = (
    "code,activity\n0,none\n1,mining\n2,industrial\n3,energy\n4,transport\n"
    "5,construction\n6,farmland\n7,tourism\n8,other\n"
)
WC_BEFORE = "ESA_WorldCover_10m_2020_v100_N00E006_Map.tif"
WC_AFTER = "ESA_WorldCover_10m_2021_v200_N00E006_Map.tif"
WC_TRANSITIONS = (
    "before,after,activity\n10|20|30|90|95|100,50,construction\n10|20|30|90|95,40,farmland\n10|20|30|90|95,60,mining\n"
)
# Rough outlines (lon, lat) of the two islands' protected forest, enough to put
# most of the tile's land change under a red line.
WC_REDLINES = {
    "Parque Natural Obô de São Tomé": [
        (6.45, 0.00),
        (6.79, 0.00),
        (6.79, 0.20),
        (6.72, 0.29),
        (6.64, 0.36),
        (6.55, 0.43),
        (6.47, 0.40),
        (6.45, 0.30),
    ],
    "Parque Natural Obô do Príncipe": [(7.32, 1.52), (7.47, 1.52), (7.47, 1.60), (7.40, 1.63), (7.32, 1.62)],
}


# --- child: one phase, one process -----------------------------------------------------


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_phase(phase: str, spec: dict) -> dict:
    """Run one phase in this process and return its measurements."""
    from redline.change import ChangeProduct, ProductReader
    from redline.config import Settings
    from redline.layers import read_layer
    from redline.patches import PatchExtractor
    from redline.scan import scan_product
    from redline.store import open_store

    product = ChangeProduct(**spec["product"])
    mmu_ha = spec["mmu_ha"]
    out: dict = {}
    if phase == "scan":  # set-up outside the clock: an empty store with the red line loaded
        db = Path(spec["db"])
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            p.unlink(missing_ok=True)
        store = open_store(f"sqlite:///{db}")
        store.add_layer_version(read_layer("redline", spec["redline"]))
        settings = Settings(mmu_ha=mmu_ha)

    base_mib, cpu0, t0 = _maxrss_mib(), _cpu_s(), time.perf_counter()
    if phase == "raw":
        with ProductReader(product) as reader:
            windows = 0
            for window in PatchExtractor(reader, mmu_ha=mmu_ha).windows():
                reader.read_raw(window)
                windows += 1
        out["windows"] = windows
    elif phase == "extract":
        with ProductReader(product) as reader:
            extractor = PatchExtractor(reader, mmu_ha=mmu_ha)
            out["patches"] = sum(len(batch) for batch in extractor.run())
            extractor.footprint()
        out.update(windows=extractor.windows_total, windows_with_change=extractor.windows_with_change)
    elif phase == "scan":
        result = scan_product(store, product, settings=settings)
        out.update(
            patches=result.patches,
            conflicts=result.conflicts,
            permitted=result.permitted,
            new_flags=len(result.new_flags),
            windows=result.windows,
            windows_with_change=result.windows_with_change,
        )
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    out.update(
        seconds=time.perf_counter() - t0, cpu_seconds=_cpu_s() - cpu0, peak_rss_mib=_maxrss_mib(), base_rss_mib=base_mib
    )
    if phase == "scan":
        store.close()
        t = time.perf_counter()  # after the clock stopped: how much of the scan is the checksum
        product.checksum()
        out["checksum_seconds"] = time.perf_counter() - t
    return out


def spawn_phase(phase: str, spec: dict) -> dict | None:
    """Run one phase in a fresh interpreter; its last line of stdout is the JSON result.

    A failing phase (its traceback goes to stderr) yields None, so the other
    phases and inputs are still measured and reported.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--spec", json.dumps(spec)]
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        print(f"{spec['name']}: {phase} phase failed (exit status {done.returncode})", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- synthetic input -------------------------------------------------------------------


def _blob(rng, area: float, cx: float, cy: float):
    """An organic, somewhat elongated blob of about ``area`` px (pit, field, spoil heap)."""
    import shapely
    from shapely import affinity

    theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    r = np.ones_like(theta)
    for m in (2, 3, 5):
        r += rng.uniform(0, 0.15) * np.cos(m * theta + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(1, 2.5)
    poly = shapely.Polygon(np.column_stack([r * np.cos(theta) * aspect**0.5, r * np.sin(theta) / aspect**0.5]))
    poly = affinity.scale(poly, *(2 * [np.sqrt(area / poly.area)]), origin=(0, 0))
    return affinity.translate(affinity.rotate(poly, rng.uniform(0, 180), origin=(0, 0)), cx, cy)


def _lot(rng, area: float, cx: float, cy: float):
    """A rotated rectangle of about ``area`` px (industrial lot, solar farm, new field)."""
    import shapely
    from shapely import affinity

    aspect = rng.uniform(1, 4)
    w, h = np.sqrt(area * aspect), np.sqrt(area / aspect)
    return affinity.rotate(shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), rng.uniform(0, 180))


def _road(rng, area: float, cx: float, cy: float):
    """A 2-3.5 px wide winding road of about ``area`` px: long, so it crosses block seams."""
    import shapely

    width = rng.uniform(2, 3.5)
    n = int(rng.integers(2, 6))
    step = area / width / n
    heading = rng.uniform(0, 2 * np.pi)
    pts = [(cx, cy)]
    for _ in range(n):
        heading += rng.uniform(-0.4, 0.4)
        pts.append((pts[-1][0] + step * np.cos(heading), pts[-1][1] + step * np.sin(heading)))
    return shapely.LineString(pts).buffer(width / 2, cap_style="flat", join_style="mitre")


# (shape, share of patches, class codes it may carry)
SHAPES = ((_blob, 0.6, (1, 5, 6, 7, 8)), (_lot, 0.3, (2, 3, 5, 6)), (_road, 0.1, (4,)))


def synthetic_patches(size: int, seed: int = SEED):
    """Planted patches in pixel coordinates (x = column, y = row) and their class codes."""
    import shapely

    rng = np.random.default_rng(seed)
    geoms, codes, area, target = [], [], 0.0, CHANGE_FRACTION * size * size
    while area < target:
        make, _, choices = SHAPES[rng.choice(len(SHAPES), p=[s[1] for s in SHAPES])]
        ha = np.exp(rng.uniform(np.log(2.0 if make is _road else 0.12), np.log(20.0)))
        geom = make(rng, ha * 100, *rng.uniform(0, size, 2))  # 1 ha = 100 px at 10 m
        geoms.append(geom)
        codes.append(int(rng.choice(choices)))
        area += geom.area
    return np.array(geoms, dtype=object), np.array(codes, dtype=np.uint8), shapely.bounds(np.array(geoms))


def write_synthetic(path: Path, size: int, seed: int = SEED) -> None:
    """Write the change raster one block row at a time, so memory stays ~one strip."""
    import rasterio
    from affine import Affine
    from rasterio.features import rasterize
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    geoms, codes, bounds = synthetic_patches(size, seed)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=1,
        dtype="uint8",
        crs=UTM,
        transform=from_origin(*ORIGIN, PIXEL, PIXEL),
        tiled=True,
        blockxsize=BLOCK,
        blockysize=BLOCK,
        compress="deflate",
        BIGTIFF="IF_SAFER",
    )
    tmp = path.with_suffix(".part.tif")
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(tmp, "w", **profile) as dst:
        for i, r0 in enumerate(range(0, size, BLOCK)):
            h = min(BLOCK, size - r0)
            hit = np.flatnonzero((bounds[:, 3] >= r0) & (bounds[:, 1] < r0 + h))
            strip = np.zeros((h, size), dtype=np.uint8)
            if hit.size:
                rasterize(zip(geoms[hit], codes[hit].tolist()), out=strip, transform=Affine.translation(0, r0))
            rng = np.random.default_rng([seed, i])  # salt noise: single pixels, any code
            n = rng.poisson(NOISE_FRACTION * h * size)
            rows, cols = rng.integers(0, h, n), rng.integers(0, size, n)
            free = strip[rows, cols] == 0
            strip[rows[free], cols[free]] = rng.integers(1, 9, n, dtype=np.uint8)[free]
            dst.write(strip, 1, window=Window(0, r0, size, h))
    tmp.replace(path)


def write_synthetic_redline(path: Path, size: int, seed: int = SEED) -> float:
    """Four large irregular red-line zones (~30 % of the grid) in CGCS2000; returns the share."""
    import geopandas as gpd
    import shapely
    from rasterio.transform import from_origin

    from redline.geo import apply_affine, reproject

    rng = np.random.default_rng([seed, 1 << 20])
    theta = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    radius = np.sqrt(REDLINE_FRACTION / 4 / np.pi) * size
    zones = []
    for cx, cy in ((0.27, 0.30), (0.72, 0.26), (0.30, 0.74), (0.71, 0.70)):
        r = np.ones_like(theta)
        for m in (2, 3, 4, 7):
            r += rng.uniform(0, 0.08) * np.cos(m * theta + rng.uniform(0, 2 * np.pi))
        zones.append(
            shapely.Polygon(
                np.column_stack([cx * size + radius * r * np.cos(theta), cy * size + radius * r * np.sin(theta)])
            )
        )
    # one zone has an enclave (an existing town is not red line)
    zones[0] = zones[0].difference(shapely.Point(0.27 * size, 0.30 * size).buffer(0.03 * size))
    share = shapely.union_all(zones).intersection(shapely.box(0, 0, size, size)).area / size**2
    geoms = reproject(apply_affine(np.array(zones, dtype=object), from_origin(*ORIGIN, PIXEL, PIXEL)), UTM, "EPSG:4490")
    gdf = gpd.GeoDataFrame(
        {
            "name": [
                "库布齐沙漠防风固沙生态保护红线",
                "黄河湿地生物多样性维护红线",
                "毛乌素沙地水土保持红线",
                "鄂尔多斯高原水源涵养红线",
            ],
            "function_type": ["防风固沙", "生物多样性维护", "水土保持", "水源涵养"],
        },
        geometry=list(geoms),
        crs="EPSG:4490",
    )
    path.unlink(missing_ok=True)
    gdf.to_file(path, driver="GPKG")
    return share


def prepare_synthetic(workdir: Path, size: int, mmu_ha: float) -> dict:
    folder = workdir / f"synthetic-{size}-v{GENERATOR_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    raster = folder / "change.tif"
    if raster.exists():
        print(f"synthetic {size} x {size}: reusing {raster}", file=sys.stderr)
    else:
        print(f"synthetic {size} x {size}: generating {raster} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        write_synthetic(raster, size)
        print(f"  done in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    (folder / "classes.csv").write_text(CLASS_TABLE)
    share = write_synthetic_redline(folder / "redline.gpkg", size)
    return {
        "name": f"synthetic-{size}",
        "description": f"class mode, {size} x {size} uint8, {BLOCK}x{BLOCK} deflate tiles, red line {share:.0%}",
        "product": {
            "product_id": f"bench-synthetic-{size}",
            "mode": "class",
            "path": str(raster),
            "class_table": str(folder / "classes.csv"),
            "acquired_after": "2026-06-30",
        },
        "redline": str(folder / "redline.gpkg"),
        "db": str(folder / "scan.db"),
        "mmu_ha": mmu_ha,
    }


# --- WorldCover input ------------------------------------------------------------------


def prepare_worldcover(workdir: Path, source: Path, mmu_ha: float) -> dict | None:
    before, after = source / WC_BEFORE, source / WC_AFTER
    if not (before.exists() and after.exists()):
        return None
    import geopandas as gpd
    import shapely

    folder = workdir / "worldcover"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "transitions.csv").write_text(WC_TRANSITIONS)
    gdf = gpd.GeoDataFrame(
        {"name": list(WC_REDLINES), "function_type": ["biodiversity", "biodiversity"]},
        geometry=[shapely.Polygon(ring) for ring in WC_REDLINES.values()],
        crs="EPSG:4326",
    )
    (folder / "redline.gpkg").unlink(missing_ok=True)
    gdf.to_file(folder / "redline.gpkg", driver="GPKG")
    return {
        "name": "worldcover-N00E006",
        "description": "transition mode, 2 x 36000 x 36000 uint8, 1024x1024 deflate tiles, 2020 v100 -> 2021 v200",
        "product": {
            "product_id": "bench-worldcover-N00E006",
            "mode": "transition",
            "path": str(after),
            "before_path": str(before),
            "transition_table": str(folder / "transitions.csv"),
            "acquired_before": "2020-12-31",
            "acquired_after": "2021-12-31",
        },
        "redline": str(folder / "redline.gpkg"),
        "db": str(folder / "scan.db"),
        "mmu_ha": mmu_ha,
    }


# --- parent ----------------------------------------------------------------------------


def engine_revision() -> str:
    """The commit the engine was measured at, with ``-dirty`` when redline/ has local edits."""
    import redline

    where = Path(redline.__file__).resolve().parent
    if where != ROOT / "redline":
        return f"imported from {where}"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "redline"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def warm_page_cache(spec: dict) -> None:
    """Read the input files once, so no phase pays for the first read from disk."""
    for key in ("path", "before_path"):
        if spec["product"].get(key):
            with open(spec["product"][key], "rb") as f:
                while f.read(1 << 24):
                    pass


def benchmark(spec: dict) -> dict:
    warm_page_cache(spec)
    phases = {}
    for phase in PHASES:
        print(f"{spec['name']}: {phase} ...", file=sys.stderr, flush=True)
        phases[phase] = spawn_phase(phase, spec)
    raw = phases["raw"]["seconds"] if phases["raw"] else None
    return {
        "name": spec["name"],
        "description": spec["description"],
        "product": spec["product"],
        "mmu_ha": spec["mmu_ha"],
        "phases": phases,  # a failed phase is null
        "ratios": {f"{p}/raw": phases[p]["seconds"] / raw if raw and phases[p] else None for p in PHASES[1:]},
    }


def print_report(results: list[dict], wall: float) -> None:
    header = (
        f"{'input':<20} {'phase':<8} {'seconds':>9} {'x raw':>7} {'cpu s':>8} {'peak RSS MiB':>13} {'+ over start':>13}"
    )
    print(header)
    print("-" * len(header))
    for res in results:
        raw = res["phases"]["raw"]
        for i, phase in enumerate(PHASES):
            m, name = res["phases"][phase], res["name"] if i == 0 else ""
            if m is None:
                print(f"{name:<20} {phase:<8} {'failed':>9}")
                continue
            ratio = f"{m['seconds'] / raw['seconds']:>7.2f}" if raw else f"{'-':>7}"
            print(
                f"{name:<20} {phase:<8} {m['seconds']:>9.2f} {ratio} {m['cpu_seconds']:>8.2f} "
                f"{m['peak_rss_mib']:>13.0f} {m['peak_rss_mib'] - m['base_rss_mib']:>13.0f}"
            )
        print(f"{'':<20} {res['description']}")
        ex, sc = res["phases"]["extract"], res["phases"]["scan"]
        counts = []
        if ex:
            counts.append(f"windows {ex['windows']} ({ex['windows_with_change']} with change), patches {ex['patches']}")
        if sc:
            counts.append(
                f"scan: patches {sc['patches']}, conflicts {sc['conflicts']}, permitted {sc['permitted']}, "
                f"new flags {sc['new_flags']}, checksum {sc['checksum_seconds']:.3f} s"
            )
        print(f"{'':<20} {'; '.join(counts)}")
        print()
    print(
        f"engine {engine_revision()}; wall time {wall:.1f} s (generation and all phases); "
        f"'+ over start' = peak RSS minus the RSS after imports and set-up"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--synthetic-size",
        type=int,
        default=DEFAULT_SIZE,
        metavar="N",
        help=f"side of the synthetic raster in pixels (default {DEFAULT_SIZE})",
    )
    ap.add_argument(
        "--worldcover",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "real" / "worldcover",
        metavar="DIR",
        help="folder holding the WorldCover N00E006 2020/2021 pair (default ../shared/data/real/worldcover)",
    )
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-worldcover", action="store_true")
    ap.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp/redline-bench"),
        metavar="DIR",
        help="where generated inputs are cached and stores written (default /tmp/redline-bench)",
    )
    ap.add_argument("--mmu-ha", type=float, default=0.1, metavar="HA", help="minimum mapping unit (default 0.1 ha)")
    ap.add_argument("--json-out", type=Path, metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.phase:  # child
        print(json.dumps(run_phase(args.phase, json.loads(args.spec))))
        return

    t0 = time.perf_counter()
    specs = []
    if not args.skip_synthetic:
        specs.append(prepare_synthetic(args.workdir, args.synthetic_size, args.mmu_ha))
    if not args.skip_worldcover:
        spec = prepare_worldcover(args.workdir, args.worldcover, args.mmu_ha)
        if spec is None:
            print(f"worldcover: skipped, {args.worldcover} lacks {WC_BEFORE} / {WC_AFTER}")
        else:
            specs.append(spec)
    results = [benchmark(spec) for spec in specs]
    wall = time.perf_counter() - t0
    if results:
        print_report(results, wall)
    if args.json_out:
        import rasterio

        doc = {
            "engine": engine_revision(),
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "rasterio": rasterio.__version__,
                "gdal": rasterio.__gdal_version__,
            },
            "wall_seconds": wall,
            "inputs": results,
        }
        args.json_out.write_text(json.dumps(doc, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
