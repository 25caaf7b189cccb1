"""``redline recheck``: re-evaluate open flags against the current layer and rules versions."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..recheck import recheck_flags
from ..rules import PROTECTION_LAYERS
from .options import JsonOpt, console, print_json, settings, store


def recheck(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change; write nothing.")] = False,
    as_json: JsonOpt = False,
):
    """Re-check open flags after a new red-line / reserve layer version (or rule set) was loaded."""
    with store() as s:
        out = recheck_flags(s, settings=settings(), dry_run=dry_run)
    if as_json:
        print_json(out)
        return
    versions = ", ".join(f"{k} v{v}" for k, v in sorted(out["layer_versions"].items()))
    if not out["rechecked"]:
        console.print(
            f"all {out['open_flags']} open flags are judged against {versions}, rules "
            f"{out['rules_version']}: nothing to do"
        )
        return
    t = Table("flag", "status", "severity", "zone", "versions", title="re-checked" + (" (dry run)" if dry_run else ""))
    for c in out["rechecked"]:
        sev = c["severity"]
        z = c["zone"]["to"]
        old = ", ".join(
            f"{k} v{v}" for k, v in sorted((c["layer_versions"]["from"] or {}).items()) if k in PROTECTION_LAYERS
        )
        t.add_row(
            str(c["flag_id"]),
            c["status"],
            f"{sev['from'] or '-'} -> {sev['to'] or '-'}" if sev["from"] != sev["to"] else (sev["to"] or "-"),
            "outside all zones" if z is None else f"{z['name']} ({z['regime']})",
            f"{old or '-'} -> {versions}",
        )
    console.print(t)
    console.print(
        f"{len(out['rechecked'])} of {out['open_flags']} open flags re-checked; "
        f"{out['severity_changed']} changed severity, {out['outside_zones']} now outside every zone"
        + ("; nothing written (dry run)" if dry_run else "")
    )
