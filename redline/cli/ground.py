"""``redline ground``: record a problem found on the ground (an inspection, a hotline call)."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import shapely
import typer

from ..auth import OPERATOR
from ..errors import InputError, MissingFileError
from ..ground import Photo, report_ground
from ..regions import read_region
from .options import JsonOpt, console, parse_date, print_json, settings, store

app = typer.Typer(help="Ground reports: problems found in the field or reported by phone.", no_args_is_help=True)


@app.command("add")
def add(
    activity: Annotated[str, typer.Option(help="What is going on: mining, road, 采矿, 光伏...")],
    note: Annotated[str, typer.Option(help="What was found.")],
    lon: Annotated[float | None, typer.Option(help="Longitude of the place (with --lat).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude of the place (with --lon).")] = None,
    region: Annotated[
        Path | None, typer.Option(help="The place as a polygon: GeoJSON, GeoPackage, zipped shapefile, KML.")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of a --region file that names none.")] = None,
    photo: Annotated[list[Path] | None, typer.Option("--photo", help="A JPEG/PNG photo or PDF (repeatable).")] = None,
    on: Annotated[str | None, typer.Option(help="The day it was seen (default today).")] = None,
    ref: Annotated[str | None, typer.Option(help="The report's own reference (e.g. the hotline ticket).")] = None,
    actor: Annotated[str, typer.Option(help="Who reports it.")] = "operator",
    as_json: JsonOpt = False,
):
    """The report becomes a flag with source ground (or an observation of the flag it lies on),
    with the photos attached as evidence."""
    if (lon is None) != (lat is None) or (lon is None) == (region is None):
        raise InputError("give the place as --lon X --lat Y, or as --region FILE")
    day = parse_date(on, "on")
    geometry = shapely.Point(lon, lat) if region is None else read_region(region, crs, name=region.name)
    for p in photo or []:
        if not p.is_file():
            raise MissingFileError(f"{p}: no such file")
    with ExitStack() as files, store() as s:
        photos = [Photo(files.enter_context(open(p, "rb")), p.name) for p in photo or []]
        out = report_ground(
            s,
            geometry,
            activity,
            note,
            replace(OPERATOR, name=actor),
            photos=photos,
            observed_on=day,
            ref=ref,
            settings=settings(),
        )
    if as_json:
        print_json(out)
        return
    what = "new flag" if out["new"] else "observation of flag"
    console.print(
        f"ground report {out['source_ref']}: {what} {out['flag_id']} ({out['status']}), "
        f"{len(out['evidence'])} photo(s) attached",
        highlight=False,
    )
