"""The nightly digest: what a night found, as JSON and a small self-contained HTML page.

Both files are written atomically (temp file in the same folder, fsync, rename), so a
reader or a crash never sees half a digest.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from . import vocab
from .errors import NotFoundError
from .model import FLAG_BRIEF
from .store import Store

FLAG_KEYS = FLAG_BRIEF  # the flag's fields marked Brief in redline.model


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that it appears whole or not at all."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _admin(f: dict) -> str:
    if f.get("admin_name") or f.get("admin_code"):
        return f"{f.get('admin_name') or ''} ({f.get('admin_code') or '-'})".strip()
    return "outside admin units"


def _group(flags: list[dict]) -> dict:
    by = {"severity": Counter(), "activity": Counter(), "admin": Counter()}
    area = defaultdict(float)
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


def build_digest(store: Store, run: dict, entries: list[dict], known_failures: list[dict],
                 unsettled: list[str]) -> dict:
    """The digest of the ledger ``entries`` not yet reported (done and failed), from the store's current state."""
    done = sorted((e for e in entries if e["state"] == "done"),
                  key=lambda e: ((e["result"] or {}).get("acquired_after") or "", e["location"]))
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
        scans.append({
            "item_id": e["item_id"], "source": e["source"], "location": e["location"], "scan_id": e["scan_id"],
            "product_id": r.get("product_id"), "acquired_after": r.get("acquired_after"),
            "already_scanned": bool(r.get("already_scanned")), "patches": r.get("patches", 0),
            "conflicts": r.get("conflicts", 0), "permitted": r.get("permitted", 0),
            "new_flags": len(r.get("new_flags", [])), "observed_flags": len(r.get("observed_flags", [])),
            "observed_fraction": r.get("observed_fraction"), "attempts": e["attempts"],
        })
    fail = [{"item_id": e["item_id"], "source": e["source"], "location": e["location"], "reason": e["reason"],
             "attempts": e["attempts"]} for e in failed]
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


# --- HTML ----------------------------------------------------------------------------

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.4em 0}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
th{background:#f4f4f4}td.n{text-align:right}.ok{color:#1a7f37}.bad{color:#b3261e;font-weight:bold}
.critical{color:#b3261e;font-weight:bold}.high{color:#d9480f}.medium{color:#9a6700}.low{color:#0969da}
.muted{color:#777}"""


def _e(x) -> str:
    return html.escape("" if x is None else str(x))


def _sev(severity) -> str:
    cls = severity if severity in vocab.SEVERITIES else "muted"
    return f'<span class="{cls}">{_e(severity or "none")}</span>'


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    if not rows:
        return "<p class=muted>none</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _groups(g: dict) -> str:
    parts = []
    for key, title in (("by_severity", "severity"), ("by_activity", "activity"), ("by_admin", "admin unit")):
        parts.append(_table([title, "flags"], [[_sev(k) if key == "by_severity" else _e(k), v]
                                               for k, v in g[key].items()], {1}))
    flags = _table(
        ["id", "severity", "status", "activity", "ha", "mu", "zone", "admin unit", "last seen"],
        [[f["id"], _sev(f["severity"]), _e(f["status"]), _e(f["activity"]),
          f"{f['area_ha']:,.2f}", f"{f['area_mu']:,.1f}",
          _e(f"{f['zone_name'] or ''} ({f['zone_regime'] or '-'})"), _e(_admin(f)), _e(f["last_seen"])]
         for f in g["flags"]], {0, 4, 5})
    return (f"<p>{g['count']} flags, {g['area_ha']:,.2f} ha ({g['area_mu']:,.0f} mu)</p>"
            f"<div style='display:flex;gap:2em;flex-wrap:wrap'>{''.join(parts)}</div>{flags}")


def render_html(d: dict) -> str:
    t = d["totals"]
    status = ("<span class=ok>all products scanned</span>" if d["status"] == "ok"
              else f"<span class=bad>{t['failed']} product(s) failed</span>")
    scans = _table(
        ["product", "acquired", "patches", "conflicts", "new flags", "re-observed", "observed", "file"],
        [[_e(s["product_id"] or s["item_id"]) + (" <span class=muted>(already scanned)</span>"
                                                  if s["already_scanned"] else ""),
          _e(s["acquired_after"]), s["patches"], s["conflicts"], s["new_flags"], s["observed_flags"],
          "" if s["observed_fraction"] is None else f"{s['observed_fraction']:.0%}", _e(s["location"])]
         for s in d["scans"]], {2, 3, 4, 5, 6})
    failures = _table(["product", "reason", "attempts", "file"],
                      [[_e(f["item_id"]), _e(f["reason"]), f["attempts"], _e(f["location"])] for f in d["failures"]],
                      {2})
    known = _table(["product", "reason", "file"],
                   [[_e(f["item_id"]), _e(f["reason"]), _e(f["location"])] for f in d["known_failures"]])
    recovery = _table(["flag", "verdict", "observed", "still changed", "product"],
                      [[v["flag_id"], _e(v["verdict"]), f"{v['observed_fraction']:.0%}",
                        f"{v['changed_fraction']:.0%}", _e(v.get("product_id"))] for v in d["recovery"]], {0, 2, 3})
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8><title>redline nightly digest {_e(d['run_id'])}</title>
<style>{_CSS}</style></head><body>
<h1>redline nightly digest</h1>
<p>run {_e(d['run_id'])}, {_e(d['started_at'])} &ndash; {_e(d['finished_at'])}: {status}.<br>
{t['discovered']} products found, {t['scanned']} scanned, {t['already_scanned']} already scanned,
{t['unchanged']} unchanged since an earlier night, {t['failed']} failed,
{t['known_failures_not_retried']} known failures not retried, {t['not_settled']} still being written.</p>
<h2>New flags</h2>{_groups(d['new_flags'])}
<h2>New observations of existing flags</h2>{_groups(d['new_observations'])}
<h2>Rectified sites seen again</h2>{recovery}
<h2>Failed products</h2>{failures}
<h2>Known failures, not retried (<code>redline nightly --retry-failed</code>)</h2>{known}
<h2>Scans</h2>{scans}
</body></html>
"""


def write_digest(folder: Path, digest: dict, hook=None) -> dict:
    """Write ``digest-<run>.json`` / ``.html`` and refresh ``latest.json`` / ``latest.html``."""
    folder = Path(folder)
    text = json.dumps(digest, ensure_ascii=False, indent=2, default=str)
    page = render_html(digest)
    paths = {"json": folder / f"digest-{digest['run_id']}.json", "html": folder / f"digest-{digest['run_id']}.html"}
    write_atomic(paths["json"], text)
    if hook:
        hook("digest-json")
    write_atomic(paths["html"], page)
    write_atomic(folder / "latest.json", text)
    write_atomic(folder / "latest.html", page)
    return {k: str(v) for k, v in paths.items()}
