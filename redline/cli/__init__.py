"""The ``redline`` command line: one module per command, shared options in options.py."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape

from ..config import Settings, get_settings
from ..errors import RedlineError
from ..safeio import harden_gdal
from . import (
    check,
    db,
    evidence,
    export,
    flags,
    ground,
    layers,
    leads,
    ledger,
    nightly,
    packet,
    recheck,
    report,
    scan,
    screen,
    serve,
    subscriptions,
    tokens,
)
from .options import CURRENT, err_console

app = typer.Typer(
    name="redline",
    help="Ecological red-line supervision: load protection layers, scan change products, check regions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="REDLINE_DATABASE_URL", help="Store URL (default sqlite:///redline.db)."),
    ] = None,
):
    # the one place the CLI reads its settings (environment, then --db); commands get them
    # from the context and hand them down to the engine
    CURRENT.set(Settings(database_url=db) if db else get_settings())


app.add_typer(layers.app, name="layers")
app.add_typer(flags.app, name="flags")
app.add_typer(tokens.app, name="tokens")
app.add_typer(db.app, name="db")
app.add_typer(evidence.app, name="evidence")
app.add_typer(report.app, name="report")
app.add_typer(ledger.app, name="ledger")
app.add_typer(leads.app, name="leads")
app.add_typer(ground.app, name="ground")
app.command("scan")(scan.scan)
app.command("check")(check.check)
app.command("screen")(screen.screen)
app.command("export")(export.export)
app.command("serve")(serve.serve)
app.command("nightly")(nightly.nightly)
app.command("recheck")(recheck.recheck)
app.add_typer(subscriptions.app, name="subscriptions")
app.add_typer(subscriptions.deliveries_app, name="deliveries")
app.command("notify")(subscriptions.notify)
app.command("packet")(packet.packet)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user mistakes become one line on stderr and exit status 2."""
    harden_gdal()  # no network for GDAL/PROJ, whatever a file says
    try:
        app(args=argv, prog_name="redline")
    except RedlineError as exc:
        _error(str(exc))
        sys.exit(2)
    except ValidationError as exc:  # settings from the environment
        _error(f"configuration: {exc.errors()[0]['msg']}")
        sys.exit(2)


def _error(text: str) -> None:
    # the text may hold a user's file name or value: never read as markup
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)
