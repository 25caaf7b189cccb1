"""``redline nightly``: scan every new change product once, write a digest (for cron)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import InputError
from ..nightly import NightlyOptions, run_nightly
from .options import (
    JsonOpt,
    SchedulerOpt,
    WorkersOpt,
    console,
    err_console,
    extractor,
    print_json,
    scan_bars,
    settings,
    store,
)

STATE_STYLE = {"done": "green", "failed": "bold red", "unchanged": "dim", "known-failure": "yellow"}


def nightly(
    watch: Annotated[
        list[Path] | None,
        typer.Option("--watch", help="Folder new change products arrive in (repeatable; searched recursively)."),
    ] = None,
    stac: Annotated[
        list[str] | None, typer.Option("--stac", help="STAC catalog, collection or ItemCollection JSON (repeatable).")
    ] = None,
    digest_dir: Annotated[
        Path, typer.Option(help="Where digest-<run>.json/.html and latest.json/.html are written.")
    ] = Path("digests"),
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Scan again products that failed on an earlier night.")
    ] = False,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Record a product as failed after this many interrupted scans.")
    ] = 3,
    settle: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds a file must be left untouched before it is taken (still being copied otherwise)."
        ),
    ] = 60.0,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    export: Annotated[
        list[Path] | None,
        typer.Option(
            "--export",
            help="Also export all flags to this file after the run (atomic; format from suffix; repeatable).",
        ),
    ] = None,
    as_json: JsonOpt = False,
):
    """Nightly batch: discover new products (folders, STAC), scan each once, write a digest.

    Exit status: 0 all products scanned, 1 some product failed (see the digest), 2 the night could not run.
    """
    for p in export or []:
        if not p.parent.is_dir():
            raise InputError(f"{p.parent}: export folder does not exist")
    opts = NightlyOptions(
        watch=list(watch or []),
        stac=list(stac or []),
        digest_dir=digest_dir,
        retry_failed=retry_failed,
        max_attempts=max_attempts,
        settle=settle,
        exports=list(export or []),
    )

    def on_product(c, state, info):
        if as_json:
            return
        detail = ""
        if state == "done":
            detail = (
                "already scanned (same content)"
                if info["already_scanned"]
                else f"{info['patches']} patches, {info['conflicts']} conflicts, {len(info['new_flags'])} new flags, "
                f"{len(info['observed_flags'])} re-observed"
            )
        elif state in ("failed", "known-failure"):
            detail = (info or {}).get("reason") or ""
        console.print(f"[{STATE_STYLE.get(state, '')}]{state:>13}[/] {c.item_id}  {detail}", highlight=False)

    with store() as s, extractor(workers, scheduler) as make_extractor, scan_bars(as_json) as bar_for:
        digest = run_nightly(
            s,
            opts,
            settings=settings(),
            make_extractor=make_extractor,
            on_product=on_product,
            progress=lambda c: bar_for(c.item_id),
        )
    if as_json:
        print_json(digest)
    else:
        t = digest["totals"]
        console.print(
            f"night {digest['run_id']}: {t['discovered']} products, {t['scanned']} scanned, "
            f"{t['unchanged']} unchanged, {t['failed']} failed; {t['new_flags']} new flags, "
            f"{t['new_observations']} re-observed; digest {digest['files']['html']}",
            highlight=False,
        )
    if digest["status"] != "ok":
        err_console.print(
            f"[bold red]{digest['totals']['failed']} product(s) failed[/]; see {digest['files']['html']}",
            highlight=False,
        )
        raise typer.Exit(1)
