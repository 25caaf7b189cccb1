"""``redline screen``: pre-check a proposed project footprint (red lines, reserves, control units)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..regions import read_region
from ..rules import load_rules
from ..safeio import write_atomic
from ..screening import screen as screen_footprint
from .options import JsonOpt, console, print_json, settings, store

VERDICT_STYLE = {"prohibited": "bold red", "needs_approval": "bold yellow", "clear": "bold green"}


def screen(
    footprint_file: Annotated[
        Path, typer.Argument(help="Project footprint: GeoPackage, zipped shapefile, KML, GeoJSON...")
    ],
    activity: Annotated[
        str, typer.Option("--activity", "-a", help="Proposed activity: mining, energy (solar, 光伏), transport...")
    ],
    crs: Annotated[
        str | None, typer.Option(help="CRS of the footprint when the file declares none (e.g. EPSG:4490).")
    ] = None,
    as_json: JsonOpt = False,
    report: Annotated[
        Path | None,
        typer.Option(help="Also write the screening report (verdicts, map, proximity table): .pdf or .html."),
    ] = None,
):
    """Screen a footprint: verdict per red line, reserve zone and control unit touched, nearest zones,
    and what lies within 1, 5 and 10 km."""
    footprint = read_region(footprint_file, crs)
    rules = load_rules(settings().rules_path)
    with store() as s:
        answer = screen_footprint(s, footprint, activity, rules)
        if report is not None:
            from ..reports import format_for, screening_report  # matplotlib, WeasyPrint: when used

            data = screening_report(
                s, footprint, answer, format_for(report), title=footprint_file.name, basemap_url=settings().basemap_url
            )
            write_atomic(report, data)
            typer.echo(f"wrote {report}", err=as_json)  # stdout stays JSON with --json
    if as_json:
        print_json(answer)
        return
    v = answer["verdict"]
    console.print(
        f"[{VERDICT_STYLE[v]}]{v}[/]: {answer['activity']} on {answer['area_ha']:,.2f} ha ({answer['area_mu']:,.1f} mu)"
    )
    rows = answer["zones"] + answer["control_units"]
    if rows:
        t = Table("layer", "zone / unit", "code", "regime", "overlap ha", "mu", "verdict", "why", title="touched")
        for z in rows:
            why = z["rule"] or "–"
            if z.get("condition"):
                why += f" — condition: {z['condition']}"
            t.add_row(
                z["layer"],
                z["name"],
                z["code"] or "",
                z["regime"],
                f"{z['overlap_ha']:,.2f}",
                f"{z['overlap_mu']:,.1f}",
                f"[{VERDICT_STYLE[z['verdict']]}]{z['verdict']}[/]",
                why,
            )
        console.print(t)
    for key, label in (("nearest_redline", "red line"), ("nearest_reserve", "reserve zone")):
        n = answer[key]
        console.print(f"nearest {label}: " + (f"{n['name']} at {n['distance_m']:,.0f} m" if n else "none loaded"))
    counts = " · ".join(
        f"≤{r['km']:g} km: " + ", ".join(f"{n} {k}" for k, n in r["counts"].items()) for r in answer["rings"]
    )
    console.print(f"within {counts}")
