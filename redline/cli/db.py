"""``redline db``: the store's schema (Alembic migrations, SQLite and PostGIS alike)."""

from __future__ import annotations

from typing import Annotated

import typer

from ..store import migrations
from .options import JsonOpt, console, print_json, settings, store

app = typer.Typer(help="Store schema: upgrade in place, show the revision.", no_args_is_help=True)


def _url() -> str:
    return settings().database_url


def _show(url: str) -> str:
    from ..store.urls import redact

    return redact(url)


@app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision (default: the newest).")] = "head",
    as_json: JsonOpt = False,
):
    """Upgrade the store schema in place; all missing revisions in one transaction.

    A PostGIS database is upgraded only by this command (an SQLite file also upgrades when
    opened). An empty database gets the whole schema, the postgis extension included, when
    the role may create it.
    """
    url = _url()
    before, after = migrations.upgrade(url, revision)
    tiled = []
    if after == migrations.HEAD:  # the zoomed-out tiles of layers loaded before they were kept
        from ..tiles import prerender_missing

        with store() as s:
            tiled = prerender_missing(s)
    if as_json:
        print_json({"store": _show(url), "from": before, "to": after, "head": migrations.HEAD, "tiles": tiled})
        return
    if before == after:
        console.print(f"{_show(url)}: schema {after}, nothing to do", highlight=False)
    else:
        console.print(f"{_show(url)}: schema {before or 'empty'} → {after}", highlight=False)
    for t in tiled:
        console.print(
            f"{t['kind']}: {t['tiles']} zoomed-out tiles rendered ({t['bytes'] / 1e6:,.1f} MB)", highlight=False
        )


@app.command("current")
def current(as_json: JsonOpt = False):
    """The store's schema revision and the newest one this redline knows."""
    url = _url()
    rev = migrations.current(url)
    state = (
        "empty"
        if rev is None
        else "up to date"
        if rev == migrations.HEAD
        else "newer than this redline"
        if rev not in migrations.REVISIONS
        else "upgrade needed"
    )
    if as_json:
        print_json({"store": _show(url), "revision": rev, "head": migrations.HEAD, "state": state})
    else:
        console.print(f"{_show(url)}: schema {rev or '-'} (this redline: {migrations.HEAD}), {state}", highlight=False)
