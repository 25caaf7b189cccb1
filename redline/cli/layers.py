"""``redline layers``: load protection layers, list versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import vocab
from ..accesslist import read_access_list
from ..errors import InputError
from ..layers import add_layer, read_layer, read_mapping_file
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(
    help="Protection layers: red lines, reserve zones, permits, admin units; control units and access lists.",
    no_args_is_help=True,
)


def _field_map(fields: list[str] | None, mapping: Path | None, kind: str) -> dict[str, str]:
    out = read_mapping_file(mapping, kind) if mapping else {}
    for item in fields or []:
        canon, sep, src = item.partition("=")
        if not sep or not canon or not src:
            raise typer.BadParameter(f"{item!r}: expected CANONICAL=SOURCE, e.g. name=HXMC", param_hint="--field")
        out[canon.strip()] = src.strip()
    return out


KINDS = vocab.ZONE_KINDS + ("access-list",)


@app.command("load")
def load(
    kind: Annotated[
        str,
        typer.Argument(
            help=f"Layer kind: {', '.join(KINDS)} (control: environmental control units 环境管控单元; "
            "access-list: their access list 生态环境准入清单, a CSV or XLSX table keyed by unit code)."
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(help="Any OGR dataset: GeoPackage, zipped shapefile, GeoJSON, KML... (access-list: CSV/XLSX)"),
    ],
    field: Annotated[
        list[str] | None,
        typer.Option("--field", "-f", help="Field mapping CANONICAL=SOURCE (repeatable), e.g. -f name=HXMC."),
    ] = None,
    mapping: Annotated[Path | None, typer.Option(help="TOML field mapping with a [KIND] table.")] = None,
    layer: Annotated[
        str | None, typer.Option(help="Layer name inside a multi-layer dataset (access-list: the XLSX sheet).")
    ] = None,
    as_json: JsonOpt = False,
):
    """Load a new version of a protection layer, of the control units or of their access list."""
    if kind.replace("_", "-") == "access-list":
        return _load_access_list(file, _field_map(field, mapping, vocab.ACCESS_LIST), layer, as_json)
    if kind not in vocab.ZONE_KINDS:
        raise InputError(f"unknown layer kind {kind!r}; expected one of {', '.join(KINDS)}")
    report = read_layer(
        kind,
        file,
        mapping=_field_map(field, mapping, kind),
        layer=layer,
        max_vertices=settings().max_vertices_per_feature,
    )
    with store() as s:
        version = add_layer(s, report)
    out = {**report.summary(), "version": version["version"]}
    if as_json:
        print_json(out)
        return
    console.print(
        f"loaded [bold]{kind}[/] v{out['version']}: {out['zones_loaded']} zones, {out['area_ha']:,.1f} ha "
        f"from {file} ({out['source_crs']}); repaired {out['repaired']}, dropped {out['dropped_empty']} empty"
        f" and {out['dropped_not_polygon']} non-polygon"
    )


def _load_access_list(file: Path, mapping: dict[str, str], sheet: str | None, as_json: bool) -> None:
    report = read_access_list(file, mapping=mapping, sheet=sheet)
    with store() as s:
        version = s.add_access_list(report)
        units = {z.code for z in s.zones((vocab.CONTROL,))}
    listed = sorted({e.unit_code for e in report.entries})
    out = {**report.summary(), "version": version["version"], "unknown_units": [c for c in listed if c not in units]}
    if as_json:
        print_json(out)
        return
    by = out["by_decision"]
    console.print(
        f"loaded [bold]access list[/] v{out['version']}: {out['entries']} entries for {out['units']} units from {file}"
        f" ({by['prohibited']} prohibited, {by['restricted']} restricted, {by['allowed']} allowed)"
    )
    if out["unknown_units"]:
        console.print(
            f"[yellow]note:[/] {len(out['unknown_units'])} unit code(s) are not in the current control unit layer: "
            + ", ".join(out["unknown_units"][:10])
            + (" ..." if len(out["unknown_units"]) > 10 else "")
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
    table = Table("kind", "version", "zones / entries", "area ha", "source", "loaded")
    for r in rows:
        rep = r["report"]
        table.add_row(
            r["kind"],
            str(r["version"]),
            str(rep["zones_loaded"]) if "zones_loaded" in rep else f"{rep.get('entries', 0)} entries",
            f"{rep['area_ha']:,.1f}" if "area_ha" in rep else "–",
            r["source"],
            r["loaded_at"],
        )
    console.print(table)
