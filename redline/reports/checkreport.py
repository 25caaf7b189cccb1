"""The check report: what an inspector's check over a region found, to file.

Built from the check's answer (:func:`redline.check.check_region`) and, for the map, the
geometries behind it read again from the store: the zones, the flags the principal may see,
and the scans' footprints (where the region was not observed is hatched).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import shapely

from ..auth import OPERATOR, Principal
from ..check import not_observed as unobserved
from ..model import CheckAnswer
from ..rules import PROTECTION_LAYERS
from ..store import FlagFilter, Store
from .context import map_image, report_header
from .figures import map_figure

MAX_LABELLED = 40  # flags numbered on the map; beyond, the map would be all labels


def _day(value) -> date | None:
    return date.fromisoformat(value) if value else None


def check_context(
    store: Store,
    region,
    answer: CheckAnswer,
    *,
    principal: Principal = OPERATOR,
    title: str | None = None,
    basemap_url: str | None = None,
) -> dict:
    since, until = _day(answer.period.since), _day(answer.period.until)
    around = region.buffer(
        max(0.002, 0.05 * max(region.bounds[2] - region.bounds[0], region.bounds[3] - region.bounds[1]))
    )
    zones = store.zones(PROTECTION_LAYERS + ("permit",), bbox=around.bounds)
    admin = store.zones(("admin",), bbox=around.bounds)
    flags = store.flags(principal.scope(FlagFilter(region=region, since=since, until=until)))
    scans = [s for s in store.scans(since=since, until=until, region=region) if s["footprint"] is not None]
    seen = shapely.union_all([s["footprint"] for s in scans]) if scans else None
    not_observed = unobserved(region, seen, answer.summary.region.ha)  # as the answer has it (redline.check)
    fig = map_figure(
        focus=region,
        zones=zones,
        admin=admin,
        flags=flags,
        region=region,
        not_observed=not_observed,
        min_span_m=500,
        pad=0.05,
        size_in=(7.2, 6.0),
        label_flags=len(flags) <= MAX_LABELLED,
        basemap_url=basemap_url,
    )
    products = [
        {
            "product_id": s["product_id"],
            "mode": s["mode"],
            "sensor": s["sensor"],
            "acquired_before": s["acquired_before"],
            "acquired_after": s["acquired_after"],
            "rules_version": s["rules_version"],
            "layer_versions": s["layer_versions"],
            "files": [Path(f).name for f in s.get("files") or []],
        }
        for s in scans
    ]
    coverage = {s.product_id: s.observed_fraction for s in answer.scans}
    for p in products:
        p["observed_fraction"] = coverage.get(p["product_id"])
    return {
        **report_header(store, principal, title),
        "answer": answer.model_dump(),
        "bounds": [round(v, 6) for v in region.bounds],
        "map": map_image(fig),
        "figure": fig,
        "products": products,
        "rules_versions": sorted({s["rules_version"] for s in scans} | {f["rules_version"] for f in flags}),
    }
