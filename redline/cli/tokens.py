"""``redline tokens``: API bearer tokens (stored hashed, shown once)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..auth import ROLES, create_token
from .options import JsonOpt, console, print_json, store

app = typer.Typer(help="API access tokens with roles and jurisdictions.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who the token is for.")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLES)}.")] = "viewer",
    admin: Annotated[
        list[str] | None, typer.Option("--admin", help="Admin-unit code of the jurisdiction (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
):
    """Create a token; it is printed once and only its hash is kept."""
    with store() as s:
        token = create_token(s, name, role, admin)
    if as_json:
        print_json({"name": name, "role": role, "jurisdiction": admin or [], "token": token})
    else:
        console.print(f"token for {name} ({role}): {token}", highlight=False, soft_wrap=True)


@app.command("list")
def list_tokens(as_json: JsonOpt = False):
    """List tokens (never their values)."""
    with store() as s:
        rows = s.tokens()
    if as_json:
        print_json(rows)
        return
    t = Table("id", "name", "role", "jurisdiction", "created", "revoked")
    for r in rows:
        t.add_row(
            str(r["id"]), r["name"], r["role"], ", ".join(r["jurisdiction"]), r["created_at"], r["revoked_at"] or ""
        )
    console.print(t)


@app.command("revoke")
def revoke(token_id: int):
    """Revoke a token by id."""
    with store() as s:
        s.revoke_token(token_id)
    console.print(f"token {token_id} revoked")
