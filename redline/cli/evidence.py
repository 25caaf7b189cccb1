"""``redline evidence``: the field-evidence folder kept in line with the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..evidence import recover as recover_evidence
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
