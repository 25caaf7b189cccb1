"""The nightly digest as a page: self-contained HTML (figures embedded) that can be mailed as it is.

From the digest (:func:`redline.digest.build_digest`) and, for the figures, the store: a map
of the night's new flags, flags per month, a summary per admin unit, the critical flags first
(with image chips), and the lists. A large night is summarised: the page lists at most
``MAX_ROWS`` flags of each kind, the full list goes to a CSV file beside it, linked by name.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import shapely

from .. import vocab
from ..digest import _admin  # the digest's own name for a unit
from ..errors import NotFoundError
from ..rules import PROTECTION_LAYERS
from ..store import Store
from .context import map_image
from .figures import SEVERITY_COLOURS, bar_chart, map_figure
from .render import data_uri, render_html
from .sheet import image_chips

MAX_ROWS = 50  # flags listed on the page per section; the CSV has them all
MAX_CRITICAL = 10  # critical flags shown with their chips
MAX_MAPPED = 5000  # flags drawn on the night's map
MAX_LABELLED = 40
CSV_COLUMNS = (
    "kind",
    "id",
    "severity",
    "status",
    "activity",
    "confidence",
    "area_ha",
    "area_mu",
    "zone_layer",
    "zone_name",
    "zone_regime",
    "admin_code",
    "admin_name",
    "first_seen",
    "last_seen",
    "n_observations",
)


def by_admin(flags: list[dict]) -> list[dict]:
    """Per admin unit: flags, area and counts by severity, the unit with most flags first."""
    rows: dict[str, dict] = defaultdict(lambda: {"flags": 0, "area_ha": 0.0, **{s: 0 for s in vocab.SEVERITIES}})
    for f in flags:
        r = rows[_admin(f)]
        r["flags"] += 1
        r["area_ha"] += f.get("area_ha") or 0.0
        if f.get("severity") in vocab.SEVERITIES:
            r[f["severity"]] += 1
    return [{"unit": k, **v} for k, v in sorted(rows.items(), key=lambda kv: (-kv[1]["flags"], kv[0]))]


def digest_csv(d: dict) -> str:
    """Every flag of the night (new, and existing ones seen again) as CSV (UTF-8 with BOM: Excel
    opens the Chinese names right)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    for kind, group in (("new", d["new_flags"]), ("observed", d["new_observations"])):
        for f in group["flags"]:
            w.writerow([kind, *(f.get(c) for c in CSV_COLUMNS[1:])])
    return "\ufeff" + buf.getvalue()


def _geometries(store: Store, ids: list[int]) -> dict[int, dict]:
    out = {}
    for i in ids[:MAX_MAPPED]:
        try:
            out[i] = store.flag(i)
        except NotFoundError:
            continue
    return out


def digest_context(
    store: Store | None, d: dict, csv_name: str | None = None, *, basemap_url: str | None = None
) -> dict:
    """Without a store the page has the tables but no figures; ``basemap_url``: an XYZ tile
    template drawn under the map (Settings)."""
    new = d["new_flags"]["flags"]
    flags = _geometries(store, [f["id"] for f in new]) if store is not None else {}
    figures: dict = {}
    if flags:
        assert store is not None  # flags come from the store
        geoms = [f["geometry"] for f in flags.values()]
        focus = shapely.box(*shapely.union_all([shapely.box(*g.bounds) for g in geoms]).bounds)
        around = focus.buffer(0.01).bounds
        fig = map_figure(
            focus=focus,
            zones=store.zones(PROTECTION_LAYERS, bbox=around),
            admin=store.zones(("admin",), bbox=around),
            flags=list(flags.values()),
            min_span_m=2000,
            pad=0.08,
            size_in=(7.2, 5.4),
            label_flags=len(flags) <= MAX_LABELLED,
            basemap_url=basemap_url,
        )
        figures["map"] = map_image(fig)
    months = store.stats("month") if store is not None else []
    months = sorted((m for m in months if m.get("month")), key=lambda m: m["month"])[-24:]
    if months:
        figures["months"] = data_uri(
            bar_chart(
                [m["month"] for m in months],
                [m["count"] for m in months],
                title="flags per month first seen (all flags) 每月新增图斑",
            )
        )
    critical = []
    for f in [f for f in new if f.get("severity") == "critical"][:MAX_CRITICAL]:
        flag = flags.get(f["id"])
        if flag is None:
            continue
        assert store is not None  # flags come from the store
        observations = store.observations(f["id"])
        scans = {s["id"]: s for s in store.scans(bbox=flag["geometry"].bounds)}
        critical.append({**f, "chips": image_chips(flag, observations, scans)[:2]})
    return {
        "d": d,
        "figures": figures,
        "admin_rows": by_admin(new),
        "critical": critical,
        "max_rows": MAX_ROWS,
        "csv_name": csv_name,
        "severity_colours": SEVERITY_COLOURS,
    }


def digest_html(store: Store | None, d: dict, csv_name: str | None = None, *, basemap_url: str | None = None) -> str:
    """The digest page (HTML, self-contained but for the CSV it links by file name)."""
    return render_html("digest.html", fmt="html", **digest_context(store, d, csv_name, basemap_url=basemap_url))
