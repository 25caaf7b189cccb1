"""``redline flags``: list and show flags."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..auth import OPERATOR
from ..workflow import flag_detail
from .options import (
    ActivityOpt, AdminOpt, BboxOpt, JsonOpt, SeverityOpt, SinceOpt, StatusOpt, UntilOpt,
    console, flag_filter, print_json, store,
)

app = typer.Typer(help="Flags: persistent conflicts with their observations.", no_args_is_help=True)

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def flags_table(rows: list[dict], title: str = "flags") -> Table:
    t = Table("id", "status", "severity", "activity", "confidence", "ha", "mu", "zone", "admin", "first seen", "last seen", "obs",
              title=title)
    for f in rows:
        sev = f["severity"] or ""
        t.add_row(
            str(f["id"]), f["status"], f"[{SEVERITY_STYLE.get(sev, '')}]{sev}[/]", f["activity"], f["confidence"] or "",
            f"{f['area_ha']:,.2f}", f"{f['area_mu']:,.1f}", f"{f['zone_name']} ({f['zone_regime']})",
            f["admin_name"] or "", f["first_seen"], f["last_seen"], str(f["n_observations"]),
        )
    return t


@app.command("list")
def list_flags(
    status: StatusOpt = None, severity: SeverityOpt = None, activity: ActivityOpt = None, admin: AdminOpt = None,
    since: Annotated[str | None, typer.Option(help="Seen on or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="First seen on or before this date.")] = None,
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
        f = flag_detail(s, flag_id, OPERATOR, history=True)
    if as_json:
        print_json(f)
        return
    console.print(flags_table([f], title=f"flag {flag_id}"))
    t = Table("layer", "v", "zone", "regime", "overlap ha", "mu", "severity", "rule", title="conflicts")
    for c in f["conflicts"]:
        t.add_row(c["layer"], str(c["layer_version"]), c["zone_name"], c["regime"], f"{c['overlap_ha']:.2f}",
                  f"{c['overlap_mu']:.1f}", c["severity"] or "", c["rule"] or "")
    console.print(t)
    t = Table("date", "product", "sensor", "activity", "confidence", "ha", title="observations")
    for o in f["observations"]:
        t.add_row(o["observed_on"], o["product_id"], o["sensor"] or "", o["activity"], o["confidence"],
                  f"{o['area_ha']:.2f}")
    console.print(t)
