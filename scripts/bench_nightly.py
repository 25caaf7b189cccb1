#!/usr/bin/env python
"""Benchmark the nightly scan path: raw read, serial scan, Dask scale-out, and GDAL's command-line tools.

For each input, in one run and on the same files (the inputs and the raw / serial phases
come from ``scripts/bench_scan.py``; each of our phases runs ``--repeat`` times, in turn,
and the median is reported):

- ``raw``: read every window the scan reads, nothing else (GDAL decompression: the floor);
- ``scan``: ``scan_product`` into a fresh SQLite store holding the red line (serial);
- ``dask-1`` / ``dask-2``: the same scan on a Dask LocalCluster of 1 and 2 worker processes
  (``redline.batch.ParallelExtractor``); cluster start-up and worker warm-up are timed
  separately, not in the scan;
- ``gdal``: the same job with GDAL's command-line tools, one step after the other:
  (``gdal_calc.py`` turning the before/after pair into activity codes, for the land-cover
  pair; ``gdal_translate`` making 0 nodata for a class raster), ``gdal_polygonize.py``
  (4-connectivity, nodata masked), then ``ogr2ogr`` reprojecting the red line to lon/lat
  and ``ogr2ogr -clipdst`` clipping the patches to it. It does less than our scan: no
  minimum mapping unit, no geodesic areas, no severity, no flags. It needs Debian's
  ``gdal-bin``: when absent this script runs ``scripts/provision_gdal_bin.sh`` (``--skip-gdal``
  leaves the comparison out).

Every phase runs in a fresh process. Peak RSS: the phase process's ``ru_maxrss``; for
Dask also each worker's own ``ru_maxrss`` and the largest sum over all processes of the
phase (client, nannies, workers), sampled by this parent every 50 ms with psutil; for
GDAL the largest tool's ``ru_maxrss``.

    python scripts/bench_nightly.py [--synthetic-size N] [--workers 1,2,16] [--skip-gdal] [--json-out FILE]

Timing only: nothing here is asserted, and the test suite times nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scan  # noqa: E402  (inputs, raw and serial scan phases: one definition of each)

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("raw", "scan", "dask-*", "gdal")  # dask-N for each N of --workers
TARGETS = {"scan/raw": 3.0, "gdal/scan": 3.0, "rss_mib": 1024, "speedup": 1.6}


def _maxrss_mib(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


# --- child phases ----------------------------------------------------------------------


def _warm() -> int:
    import redline.batch  # noqa: F401 - engine imported before the clock starts

    return os.getpid()


def _worker_peak_mib() -> float:
    return _maxrss_mib()


def dask_phase(spec: dict, workers: int) -> dict:
    from redline.batch import dask_client, extractor_factory
    from redline.change import ChangeProduct
    from redline.config import Settings
    from redline.layers import read_layer
    from redline.scan import scan_product
    from redline.store import open_store

    product = ChangeProduct(**spec["product"])
    db = Path(spec["db"]).with_name(f"dask{workers}.db")
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        p.unlink(missing_ok=True)
    store = open_store(f"sqlite:///{db}")
    store.add_layer_version(read_layer("redline", spec["redline"]))
    t0 = time.perf_counter()
    with dask_client(workers=workers, memory_limit="4GiB") as client:
        client.run(_warm)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        make = extractor_factory(client)
        result = scan_product(store, product, settings=Settings(mmu_ha=spec["mmu_ha"]), make_extractor=make)
        seconds = time.perf_counter() - t1
        worker_peaks = sorted(client.run(_worker_peak_mib).values())
    store.close()
    return {
        "seconds": seconds,
        "startup_seconds": startup,
        "peak_rss_mib": _maxrss_mib(),
        "worker_peak_rss_mib": worker_peaks,
        "patches": result.patches,
        "conflicts": result.conflicts,
        "new_flags": len(result.new_flags),
        "windows": result.windows,
    }


GDAL_TOOLS = ("gdal_calc.py", "gdal_translate", "gdal_polygonize.py", "ogr2ogr")


def gdal_missing() -> list[str]:
    return [t for t in GDAL_TOOLS if shutil.which(t) is None]


def _activity_expression(table: str) -> str:
    """A gdal_calc expression giving each activity's code (1 + index) from before (A) / after (B)."""
    from redline import vocab

    terms = []
    for line in table.strip().splitlines()[1:]:
        before, after, activity = line.split(",")
        a = "|".join(f"(A=={c})" for c in before.split("|"))
        b = "|".join(f"(B=={c})" for c in after.split("|"))
        terms.append(f"{vocab.ACTIVITIES.index(vocab.activity(activity)) + 1}*(({a})&({b}))")
    return "+".join(terms)


def gdal_phase(spec: dict) -> dict:
    missing = gdal_missing()
    if missing:
        return {"missing": missing}
    import pyogrio

    product = spec["product"]
    work = Path(tempfile.mkdtemp(prefix="gdal-", dir=Path(spec["db"]).parent))
    steps: list[tuple[str, list[str]]] = []
    codes = work / "codes.tif"
    if product["mode"] == "transition":
        expr = _activity_expression(Path(product["transition_table"]).read_text())
        steps.append(
            (
                "gdal_calc",
                [
                    "gdal_calc.py",
                    "-A",
                    product["before_path"],
                    "-B",
                    product["path"],
                    f"--calc={expr}",
                    f"--outfile={codes}",
                    "--type=Byte",
                    "--NoDataValue=0",
                    "--co=TILED=YES",
                    "--co=COMPRESS=DEFLATE",
                    "--quiet",
                    "--overwrite",
                ],
            )
        )
    else:
        codes = work / "codes.vrt"
        steps.append(
            ("gdal_translate", ["gdal_translate", "-q", "-of", "VRT", "-a_nodata", "0", product["path"], str(codes)])
        )
    steps += [
        (
            "gdal_polygonize",
            ["gdal_polygonize.py", "-q", str(codes), "-f", "GPKG", str(work / "patches.gpkg"), "patches", "code"],
        ),
        ("ogr2ogr zones", ["ogr2ogr", "-t_srs", "EPSG:4326", str(work / "zones.gpkg"), spec["redline"]]),
        (
            "ogr2ogr clip",
            [
                "ogr2ogr",
                "-t_srs",
                "EPSG:4326",
                "-clipdst",
                str(work / "zones.gpkg"),
                str(work / "clipped.gpkg"),
                str(work / "patches.gpkg"),
            ],
        ),
    ]
    times = {}
    t0 = time.perf_counter()
    for name, cmd in steps:
        t = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise SystemExit(f"{name} failed: {done.stderr.strip()}")
        times[name] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    out = {
        "seconds": seconds,
        "steps": times,
        "peak_rss_mib": _maxrss_mib(resource.RUSAGE_CHILDREN),
        "polygons": pyogrio.read_info(work / "patches.gpkg")["features"],
        "clipped": pyogrio.read_info(work / "clipped.gpkg")["features"],
        "gdal": subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip(),
    }
    shutil.rmtree(work, ignore_errors=True)
    return out


def run_phase(phase: str, spec: dict) -> dict:
    if phase in ("raw", "scan"):
        return bench_scan.run_phase(phase, spec)
    if phase.startswith("dask-"):
        return dask_phase(spec, int(phase.split("-")[1]))
    if phase == "gdal":
        return gdal_phase(spec)
    raise SystemExit(f"unknown phase {phase!r}")


# --- parent ----------------------------------------------------------------------------


def spawn_phase(phase: str, spec: dict) -> dict:
    """Run a phase in a fresh interpreter, sampling the RSS of its whole process tree."""
    import psutil

    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--spec", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
                peak[0] = max(peak[0], total)
            except psutil.Error:
                pass
            done.wait(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate()
    done.set()
    thread.join()
    if proc.returncode:
        raise SystemExit(f"phase {phase} failed ({proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    res["tree_peak_rss_mib"] = peak[0] / 2**20
    return res


def benchmark(spec: dict, phases: list[str], repeat: int) -> dict:
    """Each phase ``repeat`` times in turn (GDAL once); the run with the median time is reported."""
    bench_scan.warm_page_cache(spec)
    runs: dict[str, list[dict]] = {p: [] for p in phases}
    for i in range(repeat):
        for phase in phases:
            if phase == "gdal" and i:
                continue
            print(f"{spec['name']}: {phase} ({i + 1}/{repeat}) ...", file=sys.stderr, flush=True)
            runs[phase].append(spawn_phase(phase, spec))
    out = {}
    for phase, rs in runs.items():
        if rs[0].get("missing"):
            out[phase] = rs[0]
            continue
        med = dict(sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2])
        med["all_seconds"] = [round(r["seconds"], 3) for r in rs]
        for k in ("peak_rss_mib", "tree_peak_rss_mib"):  # memory: the worst of the runs
            med[k] = max(r[k] for r in rs)
        if "worker_peak_rss_mib" in med:
            med["worker_peak_rss_mib"] = [max(x) for x in zip(*(r["worker_peak_rss_mib"] for r in rs))]
        out[phase] = med
    return {"name": spec["name"], "description": spec["description"], "repeat": repeat, "phases": out}


def _mark(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def print_report(results: list[dict]) -> None:
    head = (
        f"{'input':<20} {'phase':<16} {'seconds':>8} {'x raw':>7} {'peak RSS MiB':>13} "
        f"{'largest worker':>15} {'all processes':>14}"
    )
    print(head)
    print("-" * len(head))
    for res in results:
        ph = res["phases"]
        raw = ph["raw"]["seconds"]
        labels = {"raw": "raw read", "scan": "scan (serial)", "gdal": "GDAL CLI"}
        labels.update({p: f"scan, {p[5:]} worker{'s' * (p != 'dask-1')}" for p in ph if p.startswith("dask-")})
        for i, (name, m) in enumerate(ph.items()):
            if m.get("missing"):
                print(
                    f"{res['name'] if i == 0 else '':<20} {labels[name]:<16} not run: {', '.join(m['missing'])} "
                    "not found (install Debian's gdal-bin)"
                )
                continue
            worker = f"{max(m['worker_peak_rss_mib']):.0f}" if m.get("worker_peak_rss_mib") else ""
            print(
                f"{res['name'] if i == 0 else '':<20} {labels[name]:<16} {m['seconds']:>8.2f} "
                f"{m['seconds'] / raw:>7.2f} {m['peak_rss_mib']:>13.0f} {worker:>15} "
                f"{m['tree_peak_rss_mib']:>14.0f}"
            )
        scan = ph["scan"]["seconds"]
        r = {"scan/raw": scan / raw}
        lines = [f"scan/raw {r['scan/raw']:.2f} (target <= {TARGETS['scan/raw']:.0f}: {_mark(r['scan/raw'] <= 3)})"]
        if "dask-2" in ph:
            r["dask-2/raw"] = ph["dask-2"]["seconds"] / raw
            lines.append(f"2-worker scan/raw {r['dask-2/raw']:.2f}")
        g = ph.get("gdal", {})
        if g and not g.get("missing"):
            r["gdal/scan"] = g["seconds"] / scan
            lines.append(
                f"GDAL CLI / our serial scan {r['gdal/scan']:.2f}x (target >= 3: {_mark(r['gdal/scan'] >= 3)}; "
                + ", ".join(f"{k} {v:.1f} s" for k, v in g["steps"].items())
                + f"; {g['polygons']} polygons, {g['clipped']} after the clip)"
            )
            if "dask-2" in ph:
                r["gdal/dask-2"] = g["seconds"] / ph["dask-2"]["seconds"]
                lines.append(f"GDAL CLI / our 2-worker scan {r['gdal/dask-2']:.2f}x")
        if "dask-1" in ph and "dask-2" in ph:
            r["speedup"] = ph["dask-1"]["seconds"] / ph["dask-2"]["seconds"]
            lines.append(
                f"speed-up 1 -> 2 workers {r['speedup']:.2f}x (target >= 1.6: {_mark(r['speedup'] >= 1.6)}); "
                f"cluster start-up {ph['dask-2']['startup_seconds']:.1f} s, not in the scan"
            )
        for p in ph:
            n = int(p[5:]) if p.startswith("dask-") else 0
            if n > 2 and "dask-1" in ph:
                r[f"speedup-{n}"] = ph["dask-1"]["seconds"] / ph[p]["seconds"]
                lines.append(f"speed-up 1 -> {n} workers {r[f'speedup-{n}']:.2f}x")
        rss = ph["scan"]["peak_rss_mib"]
        lines.append(
            f"serial scan peak RSS {rss:.0f} MiB (target <= {TARGETS['rss_mib']} on WorldCover: "
            f"{_mark(rss <= TARGETS['rss_mib'])})"
        )
        sc = ph["scan"]
        lines.append(
            f"{res['description']}; {sc['patches']} patches, {sc['conflicts']} conflicts, "
            f"{sc['new_flags']} flags; checksum {sc['checksum_seconds']:.2f} s of the scan"
        )
        for line in lines:
            print(f"{'':<20} {line}")
        res["ratios"] = r
        print()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic-size", type=int, default=bench_scan.DEFAULT_SIZE, metavar="N")
    ap.add_argument(
        "--worldcover", type=Path, default=ROOT.parent / "shared" / "data" / "real" / "worldcover", metavar="DIR"
    )
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-worldcover", action="store_true")
    ap.add_argument("--skip-gdal", action="store_true", help="leave out the GDAL command-line pipeline")
    ap.add_argument(
        "--workers",
        default="1,2",
        metavar="N,N",
        help="Dask LocalCluster sizes to time (default 1,2; e.g. 1,2,16 on a 16-core machine)",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/redline-bench"), metavar="DIR")
    ap.add_argument("--mmu-ha", type=float, default=0.1, metavar="HA")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        metavar="N",
        help="runs of each of our phases; the median is reported (GDAL runs once; default 3)",
    )
    ap.add_argument("--json-out", type=Path, metavar="FILE")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:
        print(json.dumps(run_phase(args.phase, json.loads(args.spec))))
        return

    workers = sorted({int(n) for n in args.workers.split(",") if n.strip()})
    phases = [
        q
        for p in PHASES
        for q in ([f"dask-{n}" for n in workers] if p == "dask-*" else [p])
        if not (q == "gdal" and args.skip_gdal)
    ]
    if "gdal" in phases and gdal_missing():
        subprocess.run([str(ROOT / "scripts" / "provision_gdal_bin.sh")], check=False)
        if gdal_missing():
            print(
                f"GDAL command-line tools not found ({', '.join(gdal_missing())}): the GDAL comparison is left out.",
                file=sys.stderr,
            )
    t0 = time.perf_counter()
    specs = []
    if not args.skip_synthetic:
        specs.append(bench_scan.prepare_synthetic(args.workdir, args.synthetic_size, args.mmu_ha))
    if not args.skip_worldcover:
        spec = bench_scan.prepare_worldcover(args.workdir, args.worldcover, args.mmu_ha)
        if spec is None:
            print(f"worldcover: skipped, {args.worldcover} lacks the 2020/2021 pair", file=sys.stderr)
        else:
            specs.append(spec)
    results = [benchmark(spec, phases, args.repeat) for spec in specs]
    print_report(results)
    print(
        f"median of {args.repeat} runs per phase (GDAL: 1); peak RSS: the largest of the runs. "
        f"wall time {time.perf_counter() - t0:.0f} s; {os.cpu_count()} CPUs; Python {platform.python_version()}"
    )
    if args.json_out:
        import rasterio

        args.json_out.write_text(
            json.dumps(
                {
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                        "platform": platform.platform(),
                        "rasterio": rasterio.__version__,
                        "gdal": rasterio.__gdal_version__,
                    },
                    "inputs": results,
                },
                indent=2,
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
