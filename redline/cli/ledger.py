"""``redline ledger``: the rectification ledger (台账): list, show, progress notes, export."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..auth import OPERATOR
from ..errors import InputError
from ..ledger import FORMATS, add_note, archive, entry_detail, export, ledger_rows, states, summary
from ..safeio import write_atomic
from .options import (
    ActivityOpt,
    AdminOpt,
    BboxOpt,
    FlagSinceOpt,
    FlagUntilOpt,
    JsonOpt,
    SeverityOpt,
    StatusOpt,
    console,
    flag_filter,
    parse_date,
    print_json,
    settings,
    store,
)

app = typer.Typer(help="The rectification ledger: problems, deadlines, progress, close-out.", no_args_is_help=True)

TodayOpt = Annotated[str | None, typer.Option(help="Count overdue days as of this date (default today).")]


@app.command("list")
def list_ledger(
    today: TodayOpt = None,
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: FlagSinceOpt = None,
    until: FlagUntilOpt = None,
    bbox: BboxOpt = None,
    as_json: JsonOpt = False,
):
    """One row per problem, with overdue days; the count in each ledger state and the summary by
    admin unit. The flag filters narrow both (statuses off the ledger match nothing)."""
    flt = flag_filter(status, severity, activity, admin, since, until, bbox)
    with store() as s:
        rows = ledger_rows(s, OPERATOR, parse_date(today, "today"), flt)
    if as_json:
        print_json({"items": rows, "states": states(rows), "summary": summary(rows)})
        return
    t = Table(
        "id",
        "status",
        "admin",
        "activity",
        "ha",
        "responsible",
        "deadline",
        "overdue",
        "persists",
        title="rectification ledger",
    )
    for r in rows:
        t.add_row(
            str(r["id"]),
            r["status"],
            r["admin_name"] or "",
            r["activity"],
            f"{r['area_ha']:,.2f}",
            r["responsible"] or "",
            r["deadline"] or "",
            str(r["overdue_days"] or ""),
            "activity persists" if r["activity_persists"] else "",
        )
    console.print(t)


@app.command("show")
def show(flag_id: int, today: TodayOpt = None, as_json: JsonOpt = False):
    """A problem's ledger entry with its progress notes."""
    with store() as s:
        e = entry_detail(s, flag_id, OPERATOR, parse_date(today, "today"))
    if as_json:
        print_json(e)
        return
    for k in (
        "status",
        "responsible_unit",
        "responsible_person",
        "measures",
        "deadline",
        "plan_ref",
        "verified_on",
        "overdue_days",
        "activity_persists",
        "closed_on",
        "approved_by",
        "override_reason",
    ):
        console.print(f"{k}: {e[k] if e[k] is not None else ''}")
    t = Table("date", "by", "note", title="progress")
    for n in e["notes"]:
        t.add_row(n["noted_on"], n["actor"], n["note"])
    console.print(t)


@app.command("note")
def note(
    flag_id: int,
    text: str,
    on: Annotated[str | None, typer.Option(help="The day the progress was made (default today).")] = None,
    actor: Annotated[str, typer.Option(help="Who reports it.")] = "operator",
):
    """Add a dated progress note to a problem on the ledger."""
    parse_date(on, "on")
    with store() as s:
        row = add_note(s, flag_id, text, actor, replace(OPERATOR, name=actor), on)
    console.print(f"flag {flag_id}: progress noted on {row['noted_on']}")


@app.command("export")
def export_ledger(
    out: Annotated[Path, typer.Argument(help="FILE.xlsx (ledger and summary sheets) or FILE.csv.")],
    today: TodayOpt = None,
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: FlagSinceOpt = None,
    until: FlagUntilOpt = None,
    bbox: BboxOpt = None,
):
    """Write the ledger: one row per problem (and, in XLSX, a summary sheet by admin unit), narrowed
    by the flag filters."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"{out}: the ledger is written as .xlsx or .csv")
    flt = flag_filter(status, severity, activity, admin, since, until, bbox)
    with store() as s:
        data = export(s, OPERATOR, fmt, parse_date(today, "today"), flt)
    out.write_bytes(data)
    console.print(f"wrote {out}")


@app.command("archive")
def archive_problem(
    flag_id: int,
    out: Annotated[Path, typer.Option("-o", "--out", help="FILE.zip")],
    sheet: Annotated[bool, typer.Option("--sheet/--no-sheet", help="Render the problem sheet (PDF).")] = True,
):
    """The close-out archive of one problem: problem sheet, ledger entry and plan reference,
    progress notes, approvals, evidence files, history, and a manifest with each file's SHA-256."""

    if out.suffix.lower() != ".zip":
        raise InputError(f"{out}: the archive is written as .zip")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: folder does not exist")
    with store() as s:
        data = archive(s, flag_id, OPERATOR, evidence_dir=settings().evidence_dir, sheet=sheet)
    write_atomic(out, data)
    console.print(f"wrote {out}")
