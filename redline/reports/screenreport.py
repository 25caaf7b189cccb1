"""The screening report: the verdicts on a proposed project footprint, to file.

Built from the screening's answer (:func:`redline.screening.screen`) and, for the maps, the
zones and control units around the footprint read again from the store: a detail map (the
footprint over the zones and units it touches) and an overview with the 1/5/10 km rings.
"""

from __future__ import annotations

import shapely

from .. import vocab
from ..auth import OPERATOR, Principal
from ..rules import PROTECTION_LAYERS
from ..screening import padded_bounds
from ..store import Store
from .context import map_image, report_header
from .figures import map_figure

LAYER_LABELS = {"redline": "红线 red line", "reserve": "保护区 reserve", "control": "管控单元 control unit"}
VERDICT_LABELS = {"prohibited": "prohibited 禁止", "needs_approval": "needs approval 需审批", "clear": "clear 无冲突"}
DECISION_LABELS = {"prohibited": "禁止 prohibited", "restricted": "限制 restricted", "allowed": "允许 allowed"}


def screening_context(
    store: Store,
    footprint,
    answer: dict,
    *,
    principal: Principal = OPERATOR,
    title: str | None = None,
    basemap_url: str | None = None,
) -> dict:
    rings = tuple(answer["rings_km"])
    outer_m = max(rings) * 1000.0 if rings else 1000.0
    near = store.zones(PROTECTION_LAYERS + ("permit",), bbox=padded_bounds(footprint, outer_m * 1.1))
    controls = store.zones((vocab.CONTROL,), bbox=padded_bounds(footprint, outer_m * 1.1))
    fb = footprint.bounds
    detail = map_figure(
        focus=footprint,
        zones=near,
        controls=controls,
        footprint=footprint,
        min_span_m=1000,
        pad=1.0,
        size_in=(7.2, 4.4),
        label_controls=True,
        basemap_url=basemap_url,
    )
    overview = map_figure(
        focus=shapely.box(*padded_bounds(footprint, outer_m * 1.04)),  # the outermost ring, whole
        zones=near,
        controls=controls,
        footprint=footprint,
        rings_km=rings,
        pad=0.0,
        size_in=(7.2, 6.6),
        basemap_url=basemap_url,
    )
    return {
        **report_header(store, principal, title),
        "answer": answer,
        "touched": answer["zones"] + answer["control_units"],
        "bounds": [round(v, 6) for v in fb],
        "detail_map": map_image(detail),
        "overview_map": map_image(overview),
        "figures": {"detail": detail, "overview": overview},
        "layer_labels": LAYER_LABELS,
        "verdict_labels": VERDICT_LABELS,
        "decision_labels": DECISION_LABELS,
    }
