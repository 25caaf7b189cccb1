"""``redline leads``: national leads (线索) in, verification results back out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..leads import export_results, import_leads, read_mapping
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(help="National leads: import a batch, write its verification results back.", no_args_is_help=True)

BatchOpt = Annotated[str, typer.Option("--batch", help="The batch id the national platform gave the leads.")]


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="Zipped shapefile, GeoPackage, XLSX or CSV (lon/lat columns).")],
    batch: BatchOpt,
    mapping: Annotated[
        Path | None, typer.Option(help="JSON/TOML: which column is lead_id, activity, date, lon, lat (and crs).")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who imports them (the audit).")] = "operator",
    as_json: JsonOpt = False,
):
    """Leads become flags with source national (or observations of the flags they overlap);
    importing the same batch again changes nothing."""
    fields = read_mapping(mapping) if mapping is not None else None
    with store() as s:
        result = import_leads(s, file, batch, mapping=fields, actor=actor, settings=settings())
    if as_json:
        print_json(result.summary())
        return
    console.print(
        f"batch {result.batch}: {result.leads} lead(s); {len(result.new_flags)} new flag(s), "
        f"{len(result.observed_flags)} observation(s) of existing flags, {result.unchanged} already imported"
        + (f"; outside every red line and reserve: {', '.join(result.outside)}" if result.outside else ""),
        highlight=False,
    )
    for r in result.refused:  # only where the importer has a jurisdiction (the API's inspectors)
        console.print(f"refused {r['lead_id']}: {r['reason']}", highlight=False)


@app.command("export")
def export(
    batch: BatchOpt,
    out: Annotated[Path, typer.Option("-o", "--out", help="FILE.xlsx, FILE.csv, FILE.gpkg or FILE.zip (shapefile).")],
    as_json: JsonOpt = False,
):
    """The batch's verification results: its lead ids and original columns, plus flag, status,
    finding, note and dates."""
    with store() as s:
        info = export_results(s, batch, out)
    if as_json:
        print_json(info)
        return
    console.print(f"wrote {out}: {info['leads']} lead(s)", highlight=False)
