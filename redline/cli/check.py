"""``redline check``: zones, flags and imagery coverage inside a region."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..auth import OPERATOR
from ..check import check_region
from ..regions import read_region
from ..safeio import write_atomic
from .options import JsonOpt, SinceOpt, UntilOpt, console, parse_date, print_json, settings, store


def check(
    region_file: Annotated[Path, typer.Argument(help="Region: GeoPackage, zipped shapefile, KML, GeoJSON...")],
    crs: Annotated[
        str | None,
        typer.Option(
            help="CRS of the region when the file declares none (e.g. EPSG:4490); never overrides the file's own."
        ),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    as_json: JsonOpt = False,
    report: Annotated[
        Path | None, typer.Option(help="Also write the check report (map, tables, provenance): .pdf or .html.")
    ] = None,
):
    """Check a region: red lines and reserve zones touched, flags inside, imagery coverage."""
    region = read_region(region_file, crs)
    with store() as s:
        answer = check_region(s, region, parse_date(since, "since"), parse_date(until, "until"), principal=OPERATOR)
        if report is not None:
            from ..reports import check_report, format_for  # matplotlib, WeasyPrint: only when used

            write_atomic(
                report,
                check_report(
                    s, region, answer, format_for(report), title=region_file.name, basemap_url=settings().basemap_url
                ),
            )
            typer.echo(f"wrote {report}", err=as_json)  # stdout stays JSON with --json
    data = answer.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    sm = data["summary"]
    console.print(
        f"region {sm['region']['ha']:,.1f} ha ({sm['region']['mu']:,.0f} mu): touches {sm['zones_touched']} zones; "
        f"{sm['conflicts']} conflicts ({sm['conflict_area']['ha']:,.2f} ha), {sm['flags']} flags in all; "
        f"observed {sm['observed_fraction']:.0%} by {sm['scans']} scans, last {sm['last_observed'] or 'never'}"
    )
    for sc in data["scans"]:
        console.print(
            f"  {sc['acquired_after']} {sc['product_id']} ({sc['sensor'] or 'unknown sensor'}): "
            f"saw {sc['observed_fraction']:.1%} of the region"
        )
    if data["zones"]:
        t = Table("layer", "zone", "regime", "overlap ha", "mu", "observed", "last seen", title="zones touched")
        for z in data["zones"]:
            t.add_row(
                z["layer"],
                z["name"],
                z["regime"],
                f"{z['overlap']['ha']:,.2f}",
                f"{z['overlap']['mu']:,.0f}",
                f"{z['observed_fraction']:.0%}",
                z["last_observed"] or "never",
            )
        console.print(t)
    if data["flags"]:
        from .flags import flags_table

        console.print(flags_table(data["flags"], title="flags inside"))
