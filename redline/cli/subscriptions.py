"""``redline subscriptions``, ``redline deliveries``, ``redline notify``: area subscriptions and
their deliveries after each nightly run (redline.notify)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import notify as engine
from ..auth import OPERATOR
from ..ledger import parse_day
from ..regions import read_region
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(help="Area subscriptions: webhook or e-mail deliveries after each nightly run.", no_args_is_help=True)
deliveries_app = typer.Typer(help="The delivery log of subscriptions.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The subscription's name.")],
    admin: Annotated[
        list[str] | None, typer.Option("--admin", help="Admin-unit code of the area (repeatable).")
    ] = None,
    region: Annotated[
        Path | None, typer.Option("--region", help="The area as a polygon file (GeoJSON, GPKG, KML, zipped shapefile).")
    ] = None,
    crs: Annotated[str | None, typer.Option(help="CRS of --region when the file does not say.")] = None,
    min_severity: Annotated[str | None, typer.Option("--min-severity", help="Only flags at least this severe.")] = None,
    activity: Annotated[
        list[str] | None, typer.Option("--activity", help="Only these activities (repeatable).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            help="new (new flags), observed (new observations of open flags), overdue (daily: open rectification"
            " deadlines passed); new and observed by default.",
        ),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="POST a signed JSON body to this http(s) URL.")
    ] = None,
    secret: Annotated[
        str | None, typer.Option("--secret", help="HMAC secret of the webhook signature (generated when not given).")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="Send an HTML digest with the CSV to this address.")
    ] = None,
    as_json: JsonOpt = False,
):
    """Subscribe an area (admin units or a polygon) to the nightly run's new flags."""
    area = read_region(region, crs) if region is not None else None
    row = engine.new_subscription(
        OPERATOR,
        name,
        admin_codes=admin,
        region=area,
        min_severity=min_severity,
        activities=activity,
        kinds=kind,
        webhook=webhook,
        secret=secret,
        email=email,
    )
    with store() as s:
        sub = s.add_subscription(row)
    shown = engine.public(sub)
    if row["channel"] == "webhook" and not secret:
        shown["secret"] = row["secret"]  # generated: shown this once
    if as_json:
        print_json(shown)
        return
    console.print(f"subscription {sub['name']} ({sub['channel']} {sub['target']})", highlight=False, soft_wrap=True)
    if "secret" in shown:
        console.print(f"webhook secret (shown once): {shown['secret']}", highlight=False, soft_wrap=True)


def _area(sub: dict) -> str:
    return ", ".join(sub["admin_codes"]) if sub["admin_codes"] else "polygon"


@app.command("list")
def list_subscriptions(as_json: JsonOpt = False):
    """List active subscriptions (never their secrets)."""
    with store() as s:
        rows = [engine.public(r) for r in s.subscriptions()]
    if as_json:
        print_json(rows)
        return
    t = Table("name", "owner", "area", "min severity", "activities", "kinds", "channel", "target")
    for r in rows:
        t.add_row(
            r["name"],
            f"{r['owner_name']} ({r['owner_role']})",
            _area(r),
            r["min_severity"] or "",
            ", ".join(r["activities"]),
            ", ".join(r["kinds"]),
            r["channel"],
            r["target"],
        )
    console.print(t)


@app.command("remove")
def remove(name: str):
    """Remove a subscription (its deliveries stay in the log)."""
    with store() as s:
        engine.remove_subscription(s, OPERATOR, name)
    console.print(f"subscription {name} removed", highlight=False)


def _print_deliveries(rows: list[dict], as_json: bool) -> None:
    rows = [{k: v for k, v in r.items() if k != "payload"} for r in rows]
    if as_json:
        print_json(rows)
        return
    t = Table("id", "subscription", "run", "state", "attempts", "flags", "sent", "last error")
    for r in rows:
        t.add_row(
            str(r["id"]),
            r["subscription"],
            r["run_id"],
            r["state"],
            str(r["attempts"]),
            str(r["flags"]),
            r["sent_at"] or "",
            r["last_error"] or "",
        )
    console.print(t)


@deliveries_app.command("list")
def list_deliveries(
    run: Annotated[str | None, typer.Option("--run", help="Only this nightly run's.")] = None, as_json: JsonOpt = False
):
    """The delivery log: one row per subscription and nightly run with something new."""
    with store() as s:
        rows = s.deliveries(run_id=run)
    _print_deliveries(rows, as_json)


def notify(
    run: Annotated[
        str | None, typer.Option("--run", help="Only this nightly run's (its id, as in the digest), failed ones too.")
    ] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Plan and send the day's overdue-deadline deliveries (once per day).")
    ] = False,
    on: Annotated[
        str | None, typer.Option("--on", help="With --overdue: the day (YYYY-MM-DD) deadlines are counted against.")
    ] = None,
    as_json: JsonOpt = False,
):
    """Send deliveries: a nightly run's where they are pending or failed (--run), the day's overdue
    deadlines (--overdue), else every pending one. Sent ones are never sent twice, and a delivery
    another sender is sending is left to it."""
    if on is not None and not overdue:
        raise typer.BadParameter("--on goes with --overdue", param_hint="--on")
    if run is not None and overdue:
        raise typer.BadParameter("give --run or --overdue, not both", param_hint="--run")
    day = parse_day(on, "--on") if on is not None else None
    with store() as s:
        if overdue:
            day_ = date.fromisoformat(day) if day else engine.today()
            engine.notify_overdue(s, day_, settings())
            rows = s.deliveries(run_id=engine.overdue_run_id(day_))
        elif run is not None:
            engine.notify_run(s, run, settings())
            rows = s.deliveries(run_id=run)  # the run's log as it ends
        else:
            rows = engine.deliver(s, settings())
    _print_deliveries(rows, as_json)
    if any(r["state"] != "sent" for r in rows):
        raise typer.Exit(1)
