"""Options and helpers shared by every CLI command."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import geo, vocab
from ..config import Settings
from ..errors import InputError
from ..store import FlagFilter, open_store

# Piped output (logs, cron mail) gets wide tables instead of 80 truncated columns.
console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
SinceOpt = Annotated[str | None, typer.Option(help="Only from this date on (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option(help="Only up to this date (YYYY-MM-DD).")]
# a flag's dates: seen on or after --since, first seen on or before --until
FlagSinceOpt = Annotated[str | None, typer.Option("--since", help="Seen on or after this date.")]
FlagUntilOpt = Annotated[str | None, typer.Option("--until", help="First seen on or before this date.")]
StatusOpt = Annotated[list[str] | None, typer.Option("--status", help="Flag status (repeatable).")]
SeverityOpt = Annotated[list[str] | None, typer.Option("--severity", help="Severity (repeatable).")]
ActivityOpt = Annotated[list[str] | None, typer.Option("--activity", help="Activity type (repeatable).")]
AdminOpt = Annotated[list[str] | None, typer.Option("--admin", help="Admin unit code (repeatable).")]
BboxOpt = Annotated[str | None, typer.Option(help="lon/lat bbox: minx,miny,maxx,maxy.")]
WorkersOpt = Annotated[int | None, typer.Option(min=1, help="Scan on a local Dask cluster of N worker processes.")]
SchedulerOpt = Annotated[
    str | None, typer.Option(help="Scan on an existing Dask cluster (scheduler address, e.g. tcp://host:8786).")
]


# The settings of this invocation, built once by the root command (redline.cli._root).
CURRENT: ContextVar[Settings] = ContextVar("redline_cli_settings")


def settings() -> Settings:
    """The settings the root command built for this invocation."""
    return CURRENT.get()


@contextmanager
def store():
    s = open_store(settings().database_url)
    try:
        yield s
    finally:
        s.close()


@contextmanager
def extractor(workers: int | None, scheduler: str | None):
    """``make_extractor`` for :func:`redline.scan.scan_product`: None (serial, in this process)
    or strips on a Dask cluster, which lives as long as the block."""
    if workers is None and scheduler is None:
        yield None
        return
    from ..batch import dask_client, extractor_factory

    with dask_client(workers, scheduler) as client:
        yield extractor_factory(client)


@contextmanager
def scan_bars(as_json: bool):
    """Progress bars of scans on the console (none with ``--json``): yields ``bar_for(label)``,
    which adds a bar and returns the scan's ``progress(n, total)`` callback."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:

        def bar_for(label: str):
            task = bar.add_task(f"scan {label}", total=None)
            return lambda n, total: bar.update(task, advance=n, total=total)

        yield bar_for


def parse_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=f"--{name}") from None


def parse_bbox(value: str | None):
    if value is None:
        return None
    try:
        return geo.parse_bbox(value)
    except InputError as e:
        raise typer.BadParameter(str(e), param_hint="--bbox") from None


def flag_filter(
    status=None, severity=None, activity=None, admin=None, since=None, until=None, bbox=None, limit=None
) -> FlagFilter:
    for values, allowed, name in ((status, vocab.FLAG_STATUSES, "status"), (severity, vocab.SEVERITIES, "severity")):
        for v in values or []:
            if v not in allowed:
                raise InputError(f"--{name} {v!r}: expected one of {', '.join(allowed)}")
    return FlagFilter(
        bbox=parse_bbox(bbox),
        status=status or None,
        severity=severity or None,
        activity=[vocab.activity(a) for a in activity] if activity else None,
        admin_code=admin or None,
        since=parse_date(since, "since"),
        until=parse_date(until, "until"),
        limit=limit,
    )


def print_json(obj) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))
