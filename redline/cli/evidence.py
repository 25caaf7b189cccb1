"""``redline evidence``: the field-evidence folder kept in line with the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import MissingFileError
from ..evidence import recover as recover_evidence
from ..evidence import save_evidence
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(help="Field evidence files (photos, documents).", no_args_is_help=True)


@app.command("recover")
def recover(
    folder: Annotated[Path | None, typer.Option(help="Evidence folder (default REDLINE_EVIDENCE_DIR).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be done.")] = False,
    as_json: JsonOpt = False,
):
    """Finish or remove what killed uploads left: uploads whose row was committed are renamed into
    place, uploads without a row and files that no row names are deleted. Uploads in progress are
    left alone, so this is safe while the server runs."""
    root = folder or settings().evidence_dir
    with store() as s:
        report = recover_evidence(s, root, dry_run=dry_run)
    if as_json:
        print_json({"folder": str(root), "dry_run": dry_run, **report.summary()})
        return
    verb = "would be" if dry_run else "were"
    console.print(
        f"{root}: {len(report.renamed)} committed upload(s) {verb} finished, "
        f"{len(report.removed_temp)} unfinished upload(s) and {len(report.removed_orphans)} orphan "
        f"file(s) {verb} removed; {len(report.in_progress)} upload(s) in progress; "
        f"{len(report.missing)} row(s) without a file",
        highlight=False,
    )


def _table(rows: list[dict]) -> Table:
    t = Table("id", "file", "type", "lon", "lat", "taken", "from flag m", "warning", "note", "by", "at")
    for e in rows:
        t.add_row(
            str(e["id"]),
            e["original_name"] or "",
            e["content_type"],
            "" if e["lon"] is None else f"{e['lon']:.6f}",
            "" if e["lat"] is None else f"{e['lat']:.6f}",
            e.get("taken_at") or "",
            "" if e.get("distance_m") is None else f"{e['distance_m']:,.0f}",
            f"[bold red]{e['warning']}[/]" if e.get("warning") else "",
            e["note"] or "",
            e["actor"],
            e["at"],
        )
    return t


@app.command("list")
def list_evidence(flag_id: int, as_json: JsonOpt = False):
    """The evidence of a flag, with each photo's position, time, distance from the flag and warning."""
    with store() as s:
        s.flag(flag_id)  # a flag that does not exist is an error, not an empty list
        rows = s.evidence(flag_id)
    if as_json:
        print_json(rows)
        return
    console.print(_table(rows))


@app.command("add")
def add(
    flag_id: int,
    file: Annotated[Path, typer.Argument(help="A JPEG, HEIC or PNG photo, or a PDF document.")],
    lon: Annotated[float | None, typer.Option(help="Longitude of the GPS point (else the photo's EXIF).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude of the GPS point (else the photo's EXIF).")] = None,
    note: Annotated[str | None, typer.Option(help="A note on the evidence.")] = None,
    actor: Annotated[str, typer.Option(help="Who attaches it.")] = "operator",
    as_json: JsonOpt = False,
):
    """Attach field evidence to a flag; a photo's EXIF GPS position and time are read, and a
    photo taken farther from the flag than REDLINE_EVIDENCE_MAX_DISTANCE_M is marked."""
    cfg = settings()
    if not file.is_file():
        raise MissingFileError(f"{file}: no such file")
    with store() as s, open(file, "rb") as stream:
        record = save_evidence(
            s,
            cfg.evidence_dir,
            flag_id,
            stream,
            original_name=file.name,
            actor=actor,
            lon=lon,
            lat=lat,
            note=note,
            max_bytes=cfg.max_evidence_bytes,
            max_distance_m=cfg.evidence_max_distance_m,
        )
    if as_json:
        print_json(record)
        return
    console.print(_table([record]))
