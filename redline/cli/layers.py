"""``redline layers``: load protection layers, list versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import vocab
from ..errors import InputError
from ..layers import read_layer, read_mapping_file
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(help="Protection layers: red lines, reserve zones, permits, admin units.", no_args_is_help=True)


def _field_map(fields: list[str] | None, mapping: Path | None, kind: str) -> dict[str, str]:
    out = read_mapping_file(mapping, kind) if mapping else {}
    for item in fields or []:
        canon, sep, src = item.partition("=")
        if not sep or not canon or not src:
            raise typer.BadParameter(f"{item!r}: expected CANONICAL=SOURCE, e.g. name=HXMC", param_hint="--field")
        out[canon.strip()] = src.strip()
    return out


@app.command("load")
def load(
    kind: Annotated[str, typer.Argument(help=f"Layer kind: {', '.join(vocab.LAYER_KINDS)}.")],
    file: Annotated[Path, typer.Argument(help="Any OGR dataset: GeoPackage, zipped shapefile, GeoJSON, KML...")],
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="Field mapping CANONICAL=SOURCE (repeatable), e.g. -f name=HXMC."),
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="TOML field mapping with a [KIND] table.")] = None,
    layer: Annotated[str | None, typer.Option(help="Layer name inside a multi-layer dataset.")] = None,
    as_json: JsonOpt = False,
):
    """Load a new version of a protection layer."""
    if kind not in vocab.LAYER_KINDS:
        raise InputError(f"unknown layer kind {kind!r}; expected one of {', '.join(vocab.LAYER_KINDS)}")
    report = read_layer(
        kind,
        file,
        mapping=_field_map(field, mapping, kind),
        layer=layer,
        max_vertices=settings().max_vertices_per_feature,
    )
    with store() as s:
        version = s.add_layer_version(report)
    out = {**report.summary(), "version": version["version"]}
    if as_json:
        print_json(out)
        return
    console.print(
        f"loaded [bold]{kind}[/] v{out['version']}: {out['zones_loaded']} zones, {out['area_ha']:,.1f} ha "
        f"from {file} ({out['source_crs']}); repaired {out['repaired']}, dropped {out['dropped_empty']} empty"
        f" and {out['dropped_not_polygon']} non-polygon"
    )


@app.command("list")
def list_versions(
    all_versions: Annotated[bool, typer.Option("--all", help="Every version, not only the current ones.")] = False,
    as_json: JsonOpt = False,
):
    """List layer versions."""
    with store() as s:
        rows = s.layer_versions(current_only=not all_versions)
    if as_json:
        print_json(rows)
        return
    table = Table("kind", "version", "zones", "area ha", "source", "loaded")
    for r in rows:
        table.add_row(
            r["kind"],
            str(r["version"]),
            str(r["report"]["zones_loaded"]),
            f"{r['report']['area_ha']:,.1f}",
            r["source"],
            r["loaded_at"],
        )
    console.print(table)
