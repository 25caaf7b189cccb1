"""``redline export``: flags to a file for GIS tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..export import FORMATS, export_flags
from .options import (
    ActivityOpt,
    AdminOpt,
    BboxOpt,
    JsonOpt,
    SeverityOpt,
    SinceOpt,
    StatusOpt,
    UntilOpt,
    console,
    flag_filter,
    print_json,
    store,
)


def export(
    output: Annotated[Path, typer.Argument(help="Output file.")],
    fmt: Annotated[str | None, typer.Option("--format", help=f"{' | '.join(FORMATS)} (default: from suffix).")] = None,
    crs: Annotated[
        str | None,
        typer.Option(
            help="Output CRS (default EPSG:4326; EPSG:4490 accepted). GeoJSON (RFC 7946) and KML are lon/lat only."
        ),
    ] = None,
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    bbox: BboxOpt = None,
    as_json: JsonOpt = False,
):
    """Export flags (filtered): GeoPackage (with a QGIS style), GeoJSON (RFC 7946), FlatGeobuf, GeoParquet,
    CSV (UTF-8 with BOM, WKT and centroid lon/lat), KML (styled by severity), zipped shapefile."""
    flt = flag_filter(status, severity, activity, admin, since, until, bbox)
    with store() as s:
        out = export_flags(s, output, fmt, flt, crs)
    if as_json:
        print_json(out)
    else:
        console.print(f"wrote {out['features']} flags to {out['path']} ({out['format']}, {out['crs']})")
