"""``redline report``: problem sheets (the field verification form) as PDF or HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..safeio import write_atomic
from .options import (
    ActivityOpt,
    AdminOpt,
    BboxOpt,
    FlagSinceOpt,
    FlagUntilOpt,
    SeverityOpt,
    StatusOpt,
    console,
    flag_filter,
    settings,
    store,
)

app = typer.Typer(help="Reports people file: problem sheets per flag (PDF or HTML).", no_args_is_help=True)

OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="File to write: .pdf or .html.")]
EvidenceOpt = Annotated[
    Path | None, typer.Option("--evidence-dir", help="Evidence folder for the photos (default REDLINE_EVIDENCE_DIR).")
]


def _done(path: Path, size: int, what: str) -> None:
    console.print(f"wrote {path} ({size / 1024:,.0f} KiB): {what}", highlight=False)


@app.command("flag")
def flag(flag_id: int, output: OutputOpt, evidence_dir: EvidenceOpt = None):
    """The problem sheet of one flag: location, zone, map, image chips, history, evidence and
    blank fields for the field team."""
    from ..reports import flag_report, format_for  # matplotlib, WeasyPrint: only when used

    fmt = format_for(output)
    with store() as s:
        data = flag_report(
            s, flag_id, fmt, evidence_dir=evidence_dir or settings().evidence_dir, basemap_url=settings().basemap_url
        )
    write_atomic(output, data)
    _done(output, len(data), f"problem sheet of flag {flag_id}")


@app.command("flags")
def flags(
    output: OutputOpt,
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: FlagSinceOpt = None,
    until: FlagUntilOpt = None,
    bbox: BboxOpt = None,
    evidence_dir: EvidenceOpt = None,
):
    """A packet of problem sheets, one per flag matching the filters (by id), for printing."""
    from ..reports import flags_report, format_for

    fmt = format_for(output)
    flt = flag_filter(status, severity, activity, admin, since, until, bbox)
    with store() as s:
        n = s.count_flags(flt)
        data = flags_report(
            s, flt, fmt, evidence_dir=evidence_dir or settings().evidence_dir, basemap_url=settings().basemap_url
        )
    write_atomic(output, data)
    _done(output, len(data), f"{n} problem sheet(s)")
