"""``redline scan``: scan change products once each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..change import ProductReader, resolve_product
from ..scan import scan_product
from .options import (
    JsonOpt,
    SchedulerOpt,
    WorkersOpt,
    console,
    extractor,
    parse_date,
    print_json,
    scan_bars,
    settings,
    store,
)


def scan(
    products: Annotated[
        list[Path], typer.Argument(help="Change rasters (with optional sidecar JSON) or product manifests (.json).")
    ],
    mode: Annotated[str | None, typer.Option(help="class | probability | transition.")] = None,
    classes: Annotated[Path | None, typer.Option(help="Class table CSV: code,activity[,confidence].")] = None,
    thresholds: Annotated[
        str | None, typer.Option(help="Probability thresholds per confidence level, e.g. 0.5,0.7,0.9.")
    ] = None,
    activity: Annotated[str | None, typer.Option(help="Activity a probability raster detects.")] = None,
    before: Annotated[Path | None, typer.Option(help="Before land-cover raster (transition mode).")] = None,
    transitions: Annotated[Path | None, typer.Option(help="Transition table CSV: before,after,activity.")] = None,
    product_id: Annotated[str | None, typer.Option(help="Product id (default: from sidecar/tags/file name).")] = None,
    sensor: Annotated[str | None, typer.Option(help="Sensor name.")] = None,
    acquired_before: Annotated[str | None, typer.Option(help="Acquisition date of the 'before' image.")] = None,
    acquired_after: Annotated[str | None, typer.Option(help="Acquisition date of the 'after' image.")] = None,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    as_json: JsonOpt = False,
):
    """Scan change products: patches, conflicts with zones, flags."""
    overrides = dict(
        mode=mode,
        class_table=classes,
        thresholds=thresholds,
        activity=activity,
        before_path=before,
        transition_table=transitions,
        product_id=product_id if len(products) == 1 else None,
        sensor=sensor,
        acquired_before=parse_date(acquired_before, "acquired-before"),
        acquired_after=parse_date(acquired_after, "acquired-after"),
    )
    resolved = [resolve_product(p, **overrides) for p in products]
    for product in resolved:  # fail fast on a bad raster or table, before any work
        ProductReader(product).close()
    results = []
    with store() as s, extractor(workers, scheduler) as make_extractor, scan_bars(as_json) as bar_for:
        for product in resolved:
            progress = bar_for(product.product_id)
            result = scan_product(s, product, settings=settings(), progress=progress, make_extractor=make_extractor)
            results.append(result.summary())
            if not as_json:
                if result.skipped:
                    console.print(f"{product.product_id}: already scanned (same content), nothing changed")
                else:
                    console.print(
                        f"{product.product_id}: {result.patches} patches, {result.conflicts} conflicts, "
                        f"{result.permitted} permitted; {len(result.new_flags)} new flags, "
                        f"{len(result.observed_flags)} re-observed; observed {result.observed_fraction:.1%} "
                        f"of the scene in {result.seconds:.1f} s"
                    )
    if as_json:
        print_json(results)
