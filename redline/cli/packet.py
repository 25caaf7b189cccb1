"""``redline packet``: a field packet (GeoPackage, KML, GPX, problem sheets) as one zip."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..packet import write_packet
from .options import (
    ActivityOpt,
    AdminOpt,
    BboxOpt,
    JsonOpt,
    SeverityOpt,
    StatusOpt,
    console,
    flag_filter,
    print_json,
    settings,
    store,
)


def packet(
    output: Annotated[Path, typer.Option("--output", "-o", help="The zip file to write.")],
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: Annotated[str | None, typer.Option(help="Seen on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="First seen on or before this date.")] = None,
    bbox: BboxOpt = None,
    sheets: Annotated[
        bool, typer.Option("--sheets/--no-sheets", help="Include the problem sheets (PDF) when they can be printed.")
    ] = True,
    as_json: JsonOpt = False,
):
    """What a field team takes offline for the flags that match (filters as in `redline flags
    list`): GeoPackage (flags, centroids, zones, QGIS style), KML, GPX waypoints, the problem
    sheets and a manifest with SHA-256 sums, as one zip."""
    flt = flag_filter(status, severity, activity, admin, since, until, bbox)
    with store() as s:
        manifest = write_packet(s, output, flt, settings=settings(), sheets=sheets)
    if as_json:
        print_json({"path": str(output), **manifest})
        return
    c = manifest["counts"]
    sheets_said = (
        "with problem sheets"
        if manifest["problem_sheets"]["included"]
        else (f"without problem sheets ({manifest['problem_sheets']['reason']})")
    )
    console.print(f"{output}: {c['flags']} flags, {c['zones']} zones, {sheets_said}", highlight=False, soft_wrap=True)
