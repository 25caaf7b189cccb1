"""The nightly digest: what a night found, as JSON, a CSV of every flag of the night and a
self-contained HTML page (from the report templates: redline/reports).

All files are written atomically (temp file in the same folder, fsync, rename), so a
reader or a crash never sees half a digest.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from . import vocab
from .errors import NotFoundError
from .model import FLAG_BRIEF
from .safeio import write_atomic
from .store import Store

FLAG_KEYS = FLAG_BRIEF  # the flag's fields marked Brief in redline.model


def _admin(f: dict) -> str:
    if f.get("admin_name") or f.get("admin_code"):
        return f"{f.get('admin_name') or ''} ({f.get('admin_code') or '-'})".strip()
    return "outside admin units"


def _group(flags: list[dict]) -> dict:
    by: dict[str, Counter[str]] = {"severity": Counter(), "activity": Counter(), "admin": Counter()}
    area: defaultdict[str, float] = defaultdict(float)
    for f in flags:
        by["severity"][f.get("severity") or "none"] += 1
        by["activity"][f["activity"]] += 1
        by["admin"][_admin(f)] += 1
        area[f.get("severity") or "none"] += f["area_ha"]
    sev_order = {s: -i for i, s in enumerate(vocab.SEVERITIES)}
    return {
        "count": len(flags),
        "area_ha": round(sum(f["area_ha"] for f in flags), 4),
        "area_mu": round(vocab.hectares_to_mu(sum(f["area_ha"] for f in flags)), 2),
        "by_severity": dict(sorted(by["severity"].items(), key=lambda kv: sev_order.get(kv[0], 1))),
        "by_activity": dict(sorted(by["activity"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "by_admin": dict(sorted(by["admin"].items(), key=lambda kv: (-kv[1], kv[0]))),
        "flags": sorted(flags, key=lambda f: (-vocab.severity_rank(f.get("severity")), f["id"])),
    }


def build_digest(
    store: Store, run: dict, entries: list[dict], known_failures: list[dict], unsettled: list[str]
) -> dict:
    """The digest of the ledger ``entries`` not yet reported (done and failed), from the store's current state."""
    done = sorted(
        (e for e in entries if e["state"] == "done"),
        key=lambda e: ((e["result"] or {}).get("acquired_after") or "", e["location"]),
    )
    failed = sorted((e for e in entries if e["state"] == "failed"), key=lambda e: e["location"])
    new_ids, seen_ids, recovery = [], [], []
    for e in done:
        r = e["result"] or {}
        new_ids += r.get("new_flags", [])
        seen_ids += r.get("observed_flags", [])
        recovery += [{**v, "product_id": r.get("product_id")} for v in r.get("recovery", [])]
    new_set = set(new_ids)
    seen_ids = sorted(set(seen_ids) - new_set)  # re-observed flags that existed before tonight

    def rows(ids):
        out = []
        for i in sorted(set(ids)):
            try:
                f = store.flag(i)
            except NotFoundError:  # pragma: no cover - flags are never deleted
                continue
            out.append({k: f.get(k) for k in FLAG_KEYS})
        return out

    scans = []
    for e in done:
        r = e["result"] or {}
        scans.append(
            {
                "item_id": e["item_id"],
                "source": e["source"],
                "location": e["location"],
                "scan_id": e["scan_id"],
                "product_id": r.get("product_id"),
                "acquired_after": r.get("acquired_after"),
                "already_scanned": bool(r.get("already_scanned")),
                "patches": r.get("patches", 0),
                "conflicts": r.get("conflicts", 0),
                "permitted": r.get("permitted", 0),
                "new_flags": len(r.get("new_flags", [])),
                "observed_flags": len(r.get("observed_flags", [])),
                "observed_fraction": r.get("observed_fraction"),
                "attempts": e["attempts"],
            }
        )
    fail = [
        {
            "item_id": e["item_id"],
            "source": e["source"],
            "location": e["location"],
            "reason": e["reason"],
            "attempts": e["attempts"],
        }
        for e in failed
    ]
    return {
        "run_id": run["run_id"],
        "started_at": run["started_at"],
        "finished_at": run.get("finished_at"),
        "status": "failures" if fail else "ok",
        "totals": {
            "discovered": run.get("discovered", 0),
            "unchanged": run.get("unchanged", 0),
            "scanned": sum(1 for s in scans if not s["already_scanned"]),
            "already_scanned": sum(1 for s in scans if s["already_scanned"]),
            "failed": len(fail),
            "known_failures_not_retried": len(known_failures),
            "not_settled": len(unsettled),
            "new_flags": len(new_set),
            "new_observations": len(seen_ids),
        },
        "scans": scans,
        "failures": fail,
        "known_failures": known_failures,
        "not_settled": unsettled,
        "new_flags": _group(rows(new_set)),
        "new_observations": _group(rows(seen_ids)),
        "recovery": recovery,
    }


# --- the page ------------------------------------------------------------------------


def render_html(
    d: dict, store: Store | None = None, csv_name: str | None = None, basemap_url: str | None = None
) -> str:
    """The digest page, from the report templates (redline/reports/templates/digest.html):
    self-contained HTML, figures embedded. With ``store``: a map of the night's new flags (over
    the ``basemap_url`` tiles when set), flags per month and image chips of the critical flags.
    ``csv_name``: the full list, linked."""
    from .reports.digestreport import digest_html  # matplotlib: only when a digest is written

    return digest_html(store, d, csv_name, basemap_url=basemap_url)


def write_digest(
    folder: Path, digest: dict, hook=None, store: Store | None = None, basemap_url: str | None = None
) -> dict:
    """Write ``digest-<run>.json`` / ``.csv`` (every flag of the night) / ``.html`` and refresh
    ``latest.json`` / ``latest.html`` (which links the run's CSV by name, in the same folder)."""
    from .reports.digestreport import digest_csv

    folder = Path(folder)
    text = json.dumps(digest, ensure_ascii=False, indent=2, default=str)
    run = digest["run_id"]
    paths = {
        "json": folder / f"digest-{run}.json",
        "csv": folder / f"digest-{run}.csv",
        "html": folder / f"digest-{run}.html",
    }
    page = render_html(digest, store, paths["csv"].name, basemap_url)
    write_atomic(paths["json"], text)
    if hook:
        hook("digest-json")
    write_atomic(paths["csv"], digest_csv(digest))  # before the pages that link it
    write_atomic(paths["html"], page)
    write_atomic(folder / "latest.json", text)
    write_atomic(folder / "latest.html", page)
    return {k: str(v) for k, v in paths.items()}
