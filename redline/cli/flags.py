"""``redline flags``: list and show flags, and move them through the workflow."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer
from rich.table import Table

from ..auth import OPERATOR
from ..workflow import flag_detail, move
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

app = typer.Typer(help="Flags: persistent conflicts with their observations.", no_args_is_help=True)

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def flags_table(rows: list[dict], title: str = "flags") -> Table:
    t = Table(
        "id",
        "status",
        "severity",
        "activity",
        "confidence",
        "ha",
        "mu",
        "zone",
        "admin",
        "first seen",
        "last seen",
        "obs",
        "source",
        title=title,
    )
    for f in rows:
        sev = f["severity"] or ""
        t.add_row(
            str(f["id"]),
            f["status"],
            f"[{SEVERITY_STYLE.get(sev, '')}]{sev}[/]",
            f["activity"],
            f["confidence"] or "",
            f"{f['area_ha']:,.2f}",
            f"{f['area_mu']:,.1f}",
            f"{f['zone_name']} ({f['zone_regime']})",
            f["admin_name"] or "",
            f["first_seen"],
            f["last_seen"],
            str(f["n_observations"]),
            f.get("source", "scan") + (f" {f['source_ref']}" if f.get("source_ref") else ""),
        )
    return t


@app.command("list")
def list_flags(
    status: StatusOpt = None,
    severity: SeverityOpt = None,
    activity: ActivityOpt = None,
    admin: AdminOpt = None,
    since: FlagSinceOpt = None,
    until: FlagUntilOpt = None,
    bbox: BboxOpt = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonOpt = False,
):
    """List flags, filtered."""
    flt = flag_filter(status, severity, activity, admin, since, until, bbox, limit)
    with store() as s:
        rows = s.flags(flt, with_geometry=False)
    if as_json:
        print_json(rows)
    else:
        console.print(flags_table(rows))
        console.print(f"{len(rows)} flags")


@app.command("show")
def show(flag_id: int, as_json: JsonOpt = False):
    """One flag with its conflicts, observations and history."""
    with store() as s:
        f = flag_detail(s, flag_id, OPERATOR, history=True).model_dump()
    if as_json:
        print_json(f)
        return
    console.print(flags_table([f], title=f"flag {flag_id}"))
    t = Table("layer", "v", "zone", "regime", "overlap ha", "mu", "severity", "rule", title="conflicts")
    for c in f["conflicts"]:
        t.add_row(
            c["layer"],
            str(c["layer_version"]),
            c["zone_name"],
            c["regime"],
            f"{c['overlap_ha']:.2f}",
            f"{c['overlap_mu']:.1f}",
            c["severity"] or "",
            c["rule"] or "",
        )
    console.print(t)
    t = Table("date", "product", "sensor", "activity", "confidence", "ha", title="observations")
    for o in f["observations"]:
        t.add_row(
            o["observed_on"],
            o["product_id"] or f"{o['source']} {o['source_ref'] or ''}",  # a lead, a ground report: no scan
            o["sensor"] or "",
            o["activity"],
            o["confidence"],
            f"{o['area_ha']:.2f}",
        )
    console.print(t)


@app.command("move")
def move_flag(
    flag_id: int,
    status: Annotated[str, typer.Argument(help="The new status (see allowed_next in `redline flags show`).")],
    note: Annotated[str | None, typer.Option(help="Why: the field finding, the progress made.")] = None,
    deadline: Annotated[str | None, typer.Option(help="Rectification deadline (YYYY-MM-DD).")] = None,
    responsible: Annotated[str | None, typer.Option(help="Responsible unit.")] = None,
    person: Annotated[str | None, typer.Option(help="Responsible person.")] = None,
    measures: Annotated[str | None, typer.Option(help="Rectification measures.")] = None,
    plan: Annotated[str | None, typer.Option(help="Rectification plan document (number or reference).")] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Close without a 'recovered' verdict from new imagery: why.")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who moves it (recorded in the audit trail).")] = "operator",
    as_json: JsonOpt = False,
):
    """Move a flag through the workflow: the same rules and audit as PATCH /flags/{id}.

    Run on the server, the CLI acts as an administrator (it may approve close-outs)."""
    parse_date(deadline, "deadline")
    ledger = {"responsible": responsible, "person": person, "measures": measures, "deadline": deadline, "plan": plan}
    with store() as s:
        out = move(
            s,
            flag_id,
            status,
            actor,
            note,
            principal=replace(OPERATOR, name=actor),
            settings=settings(),
            ledger={k: v for k, v in ledger.items() if v is not None},
            override_reason=override_reason,
        )
    if as_json:
        print_json(out)
    else:
        console.print(f"flag {flag_id}: {out['status']}")
