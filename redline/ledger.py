"""The rectification ledger (台账): from a verified violation to its close-out (销号).

A flag moved to ``verified_violation`` gets a ledger entry; the move to ``rectifying`` (or any
later move) may name the responsible unit and person, the rectification measures, the
deadline and the plan document. A note given on a move of a flag on the ledger becomes a dated
progress note. Overdue days are counted from the deadline against a ``today`` the caller may
pass (tests control dates).

Close-out (``rectified → closed``) needs, all together:

- completion evidence: at least one evidence row for the flag (redline.evidence);
- an approval by a role that may close (the ``close`` permission, redline.auth.PERMISSIONS);
- for the activities in ``Settings.close_requires_recovery_for`` (mining, industrial,
  construction by default), a recovery verdict "recovered" recorded by the nightly batch
  since the flag was last marked rectified (redline.recovery), or an override with a reason.

A refusal names everything missing at once (:class:`CloseOutError`, a ConflictError: 409).
The moves themselves are :func:`redline.workflow.move`'s; this module says what a move means
for the ledger, and builds the ledger view and its exports.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from .auth import Principal
from .clock import now
from .config import Settings
from .errors import ConflictError, InputError, NotFoundError
from .store import FlagFilter, Store

# the statuses of a problem on the ledger (closed: when it came through the ledger)
LEDGER_STATUSES = ("verified_violation", "rectifying", "rectified", "closed")
OPEN_STATUSES = ("verified_violation", "rectifying", "rectified")

# what a move may set on the ledger entry: argument name -> column
ENTRY_FIELDS = {
    "responsible": "responsible_unit",
    "person": "responsible_person",
    "measures": "measures",
    "deadline": "deadline",
    "plan": "plan_ref",
}

# one row per problem: column -> header
COLUMNS = {
    "id": "id",
    "source": "source",
    "admin_code": "admin code",
    "admin_name": "admin unit",
    "zone": "zone",
    "activity": "activity",
    "area_ha": "area ha",
    "area_mu": "area mu",
    "found_on": "found on",
    "verified_on": "verified on",
    "responsible": "responsible",
    "person": "responsible person",
    "measures": "measures",
    "deadline": "deadline",
    "status": "status",
    "overdue_days": "overdue days",
    "activity_persists": "activity persists",
    "closed_on": "closed on",
    "approved_by": "approved by",
}
SUMMARY_COLUMNS = ("admin_code", "admin_name", "problems", "rectified", "rectified_share", "overdue")


class CloseOutError(ConflictError):
    """A close-out refused; ``missing`` lists what it lacks (evidence, approval, recovery)."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = missing


def parse_day(value, what: str = "date") -> str | None:
    """A date given by a person (``date`` or 'YYYY-MM-DD') as ISO text; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise InputError(f"{what} {value!r} is not a date like 2026-09-30") from None


def entry_fields(fields: dict | None) -> dict:
    """The ledger columns a move sets, from its arguments (None: not given)."""
    out = {}
    for name, value in (fields or {}).items():
        if name not in ENTRY_FIELDS:
            raise InputError(f"unknown ledger field {name!r}; expected one of {', '.join(ENTRY_FIELDS)}")
        if value is None:
            continue
        if name == "deadline":
            value = parse_day(value, "deadline")
        else:
            value = str(value).strip()
            if not value:
                continue
        out[ENTRY_FIELDS[name]] = value
    return out


# --- verdicts from the history ----------------------------------------------------------


def _last_index(history: list[dict], to: str) -> int | None:
    idx = None
    for i, h in enumerate(history):
        if h["action"] == "status" and h["detail"].get("to") == to:
            idx = i
    return idx


def recovery_verdict(history: list[dict]) -> dict | None:
    """The latest recovery verdict recorded since the flag was last marked rectified."""
    since = _last_index(history, "rectified")
    if since is None:
        return None
    verdicts = [h["detail"] for h in history[since + 1 :] if h["action"] == "recovery"]
    return verdicts[-1] if verdicts else None


def activity_persists(flag: dict, history: list[dict], observations: list[dict] | None = None) -> bool:
    """Whether the imagery still sees the activity on a flag being (or said to be) rectified:
    a recovery verdict "persists" since it was marked rectified, or an observation acquired
    after the day it last entered rectifying."""
    if flag["status"] not in ("rectifying", "rectified"):
        return False
    verdict = recovery_verdict(history) if flag["status"] == "rectified" else None
    if verdict is not None:
        return verdict.get("verdict") == "persists"
    since = _last_index(history, "rectifying")
    if since is None:
        return False
    day = history[since]["at"][:10]
    if observations is None:
        return (flag.get("last_seen") or "") > day
    return any(o["observed_on"] > day for o in observations)


def overdue_days(entry: dict | None, status: str, today: date) -> int:
    """Days past the deadline: against ``today`` while open, against the close-out day once closed."""
    if not entry or not entry.get("deadline"):
        return 0
    deadline = date.fromisoformat(entry["deadline"])
    if status == "closed":
        end = date.fromisoformat(entry["closed_on"]) if entry.get("closed_on") else deadline
    else:
        end = today
    return max(0, (end - deadline).days)


# --- what a move means for the ledger (called by redline.workflow.move) ------------------


def check_close_out(
    store: Store, flag: dict, principal: Principal | None, override_reason: str | None, settings: Settings
) -> None:
    """Refuse a close-out that lacks evidence, approval, or a recovery verdict (or override)."""
    missing, reasons = [], []
    if not store.evidence(flag["id"]):
        missing.append("evidence")
        reasons.append("no completion evidence is attached (upload a photo or document)")
    if principal is None or principal.role not in _closers():
        missing.append("approval")
        who = f"role {principal.role}" if principal is not None else "nobody"
        reasons.append(f"{who} may not approve a close-out (needs {' or '.join(_closers())})")
    if flag["activity"] in settings.close_requires_recovery_for and not (override_reason or "").strip():
        verdict = recovery_verdict(store.history(flag["id"]))
        if verdict is None or verdict.get("verdict") != "recovered":
            missing.append("recovery")
            said = (
                "no recovery verdict since it was marked rectified"
                if verdict is None
                else f"the latest recovery verdict says the activity {verdict.get('verdict')}"
            )
            reasons.append(
                f"{flag['activity']} needs new imagery showing the site recovered ({said}); or give an override reason"
            )
    if missing:
        raise CloseOutError(f"flag {flag['id']} cannot be closed: " + "; ".join(reasons), missing)


def _closers() -> tuple[str, ...]:
    from .auth import PERMISSIONS

    return PERMISSIONS["close"]


def on_move(
    store: Store,
    flag: dict,
    to: str,
    actor: str,
    note: str | None,
    fields: dict,
    override_reason: str | None,
    principal: Principal | None,
    today: date,
) -> dict:
    """Write the ledger side of a legal move (inside its transaction); the audit's extra detail."""
    fid = flag["id"]
    extra: dict = {}
    if override_reason and not (flag["status"] == "rectified" and to == "closed"):
        raise InputError("an override reason goes with the close-out (rectified → closed) only")
    if to not in LEDGER_STATUSES:
        if fields:
            raise InputError(f"ledger fields go with moves to {', '.join(LEDGER_STATUSES)}")
        return extra
    entry = store.rectification(fid)
    row = dict(fields)
    if entry is None:
        row.setdefault("verified_on", today.isoformat())
    if to == "closed":
        if flag["status"] == "rectified":
            reason = (override_reason or "").strip() or None
            row.update(
                approved_by=principal.name if principal else actor,
                approved_at=now(),
                closed_on=today.isoformat(),
                override_reason=reason,
            )
            extra["approved_by"] = row["approved_by"]
            if reason:
                extra["override_reason"] = reason
        elif entry is None:
            return extra  # a false positive or a permitted site: never on the ledger
    if row or entry is None:
        store.save_rectification(fid, row)
    if fields:
        extra["ledger"] = fields
    if note:
        store.add_rectification_note(
            {"flag_id": fid, "noted_on": today.isoformat(), "note": note, "actor": actor, "at": now()}
        )
    return extra


def add_note(
    store: Store,
    flag_id: int,
    note: str,
    actor: str,
    principal: Principal,
    on: date | str | None = None,
    today: date | None = None,
) -> dict:
    """A dated progress note on a problem on the ledger (audited)."""
    principal.require("workflow")
    flag = store.flag(flag_id)
    principal.require_flag(flag)
    if store.rectification(flag_id) is None:
        raise ConflictError(f"flag {flag_id} is not on the rectification ledger (status {flag['status']})")
    if not (note or "").strip():
        raise InputError("a progress note needs some text")
    day = parse_day(on, "note date") or (today or date.today()).isoformat()
    row = {"flag_id": flag_id, "noted_on": day, "note": note.strip(), "actor": actor, "at": now()}
    with store.transaction():
        row["id"] = store.add_rectification_note(row)
        store.audit(flag_id, actor, "progress", {"noted_on": day, "note": row["note"]})
    return row


# --- the ledger view and its exports ------------------------------------------------------


def ledger_rows(
    store: Store, principal: Principal, today: date | None = None, flt: FlagFilter | None = None
) -> list[dict]:
    """One row per problem inside ``principal``'s jurisdiction: flags in a ledger status, and
    closed flags that came through the ledger. ``flt`` narrows them like a flag listing (status,
    severity, activity, admin unit, dates, CQL2); its statuses count only where they are the
    ledger's."""
    today = today or date.today()
    flt = principal.scope(flt)
    flt.status = [s for s in LEDGER_STATUSES if not flt.status or s in flt.status]
    if not flt.status:  # only statuses off the ledger asked for (an empty list would mean any)
        return []
    entries = {e["flag_id"]: e for e in store.rectifications()}
    rows = []
    for f in store.flags(flt, with_geometry=False):
        entry = entries.get(f["id"])
        if f["status"] == "closed" and entry is None:
            continue
        history = store.history(f["id"])
        persists = activity_persists(f, history)
        e = entry or {}
        rows.append(
            {
                "id": f["id"],
                "source": f.get("source") or "scan",
                "admin_code": f["admin_code"],
                "admin_name": f["admin_name"],
                "zone": f["zone_name"],
                "activity": f["activity"],
                "area_ha": f["area_ha"],
                "area_mu": f["area_mu"],
                "found_on": f["first_seen"],
                "verified_on": e.get("verified_on"),
                "responsible": e.get("responsible_unit"),
                "person": e.get("responsible_person"),
                "measures": e.get("measures"),
                "deadline": e.get("deadline"),
                "plan": e.get("plan_ref"),
                "status": f["status"],
                "overdue_days": overdue_days(entry, f["status"], today),
                "activity_persists": persists,
                "closed_on": e.get("closed_on"),
                "approved_by": e.get("approved_by"),
                "override_reason": e.get("override_reason"),
            }
        )
    return rows


def entry_detail(store: Store, flag_id: int, principal: Principal, today: date | None = None) -> dict:
    """A flag's ledger entry with its progress notes, overdue days and whether activity persists."""
    flag = store.flag(flag_id)
    principal.require_flag(flag)
    entry = store.rectification(flag_id)
    if entry is None:
        raise ConflictError(f"flag {flag_id} is not on the rectification ledger (status {flag['status']})")
    today = today or date.today()
    return {
        **entry,
        "status": flag["status"],
        "overdue_days": overdue_days(entry, flag["status"], today),
        "activity_persists": activity_persists(flag, store.history(flag_id)),
        "notes": store.rectification_notes(flag_id),
    }


def states(rows: list[dict]) -> dict[str, int]:
    """How many problems are in each ledger state, in the workflow's order."""
    return {s: sum(r["status"] == s for r in rows) for s in LEDGER_STATUSES}


def summary(rows: list[dict]) -> list[dict]:
    """By admin unit: problems, how many are rectified or closed (and the share), how many overdue."""
    groups: dict = {}
    for r in rows:
        g = groups.setdefault((r["admin_code"], r["admin_name"]), {"problems": 0, "rectified": 0, "overdue": 0})
        g["problems"] += 1
        g["rectified"] += r["status"] in ("rectified", "closed")
        g["overdue"] += r["status"] != "closed" and r["overdue_days"] > 0
    out = []
    for (code, name), g in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1] or "")):
        out.append(
            {
                "admin_code": code,
                "admin_name": name,
                **g,
                "rectified_share": round(g["rectified"] / g["problems"], 4) if g["problems"] else 0.0,
            }
        )
    return out


def _cell(v):
    return "yes" if v is True else "" if v is False or v is None else v


def to_csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS.values())
    for r in rows:
        w.writerow([_cell(r[c]) for c in COLUMNS])
    return ("\ufeff" + buf.getvalue()).encode()  # BOM: Excel reads the Chinese names right


def to_xlsx(rows: list[dict]) -> bytes:
    """The ledger workbook: sheet "ledger" (one row per problem), sheet "summary" (by admin unit)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "ledger"
    ws.append(list(COLUMNS.values()))
    for r in rows:
        ws.append([_cell(r[c]) for c in COLUMNS])
    ws.freeze_panes = "A2"
    sm = wb.create_sheet("summary")
    sm.append(["admin code", "admin unit", "problems", "rectified", "rectified share", "overdue"])
    for g in summary(rows):
        sm.append([g[c] for c in SUMMARY_COLUMNS])
    for sheet in (ws, sm):
        for c in sheet[1]:
            c.font = Font(bold=True)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


FORMATS = {"csv": to_csv, "xlsx": to_xlsx}
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def export(
    store: Store, principal: Principal, fmt: str, today: date | None = None, flt: FlagFilter | None = None
) -> bytes:
    if fmt not in FORMATS:
        raise InputError(f"unknown ledger format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[fmt](ledger_rows(store, principal, today, flt))


# --- the close-out archive ----------------------------------------------------------------

ARCHIVE_HISTORY_COLUMNS = ("id", "at", "actor", "action", "detail")


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n").encode()


def _csv_bytes(header, rows) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode()


def archive(
    store: Store,
    flag_id: int,
    principal: Principal,
    *,
    evidence_dir: Path | None = None,
    sheet: bool = True,
    today: date | None = None,
) -> bytes:
    """The close-out archive (销号档案) of one problem on the ledger, as a ZIP: the problem sheet
    (``sheet.pdf``, redline.reports), the ledger entry with its plan reference and progress notes,
    the approvals (who closed it, when, override or recovery verdict), the evidence files,
    the history (JSON and CSV) and ``manifest.json`` with the SHA-256 and size of every member."""
    import hashlib
    import zipfile

    from .evidence import evidence_path
    from .workflow import flag_detail

    detail = entry_detail(store, flag_id, principal, today)  # refused outside the jurisdiction / off the ledger
    flag = flag_detail(store, flag_id, principal, history=True).model_dump()
    history = flag.pop("history")
    notes = detail.pop("notes")
    members: list[tuple[str, bytes]] = []
    if sheet:
        from .reports import flag_report

        members.append(
            ("sheet.pdf", flag_report(store, flag_id, "pdf", principal=principal, evidence_dir=evidence_dir))
        )
    members.append(("flag.json", _json_bytes(flag)))
    members.append(("ledger.json", _json_bytes({**detail, "plan": detail.get("plan_ref")})))
    members.append(
        (
            "notes.csv",
            _csv_bytes(("noted_on", "actor", "note"), [(n["noted_on"], n["actor"], n["note"]) for n in notes]),
        )
    )
    closes = [h for h in history if h["action"] == "status" and h["detail"].get("to") == "closed"]
    members.append(
        (
            "approvals.json",
            _json_bytes(
                {
                    "approved_by": detail.get("approved_by"),
                    "approved_at": detail.get("approved_at"),
                    "closed_on": detail.get("closed_on"),
                    "override_reason": detail.get("override_reason"),
                    "recovery_verdict": recovery_verdict(history),
                    "close_moves": closes,
                }
            ),
        )
    )
    members.append(("history.json", _json_bytes(history)))
    members.append(
        (
            "history.csv",
            _csv_bytes(
                ARCHIVE_HISTORY_COLUMNS,
                [
                    [json.dumps(h[c], ensure_ascii=False) if c == "detail" else h[c] for c in ARCHIVE_HISTORY_COLUMNS]
                    for h in history
                ],
            ),
        )
    )
    listed = []
    for e in store.evidence(flag_id):
        item = {
            k: e[k]
            for k in ("id", "original_name", "content_type", "size", "sha256", "lon", "lat", "note", "actor", "at")
        }
        name = f"evidence/{e['id']}{Path(e['stored_name']).suffix}"
        if evidence_dir is not None:
            try:
                _, path = evidence_path(store, evidence_dir, e["id"])
                members.append((name, path.read_bytes()))
                item["file"] = name
            except NotFoundError:
                item["file"] = None  # the row's file is missing from the evidence store
        listed.append(item)
    members.append(("evidence.json", _json_bytes(listed)))
    manifest = {
        "flag_id": flag_id,
        "status": flag["status"],
        "source": flag.get("source"),
        "source_ref": flag.get("source_ref"),
        "made_at": now(),
        "made_by": principal.name,
        "members": [{"name": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in members],
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in [*members, ("manifest.json", _json_bytes(manifest))]:
            z.writestr(f"flag-{flag_id}/{name}", data)
    return buf.getvalue()


__all__ = [
    "CloseOutError",
    "archive",
    "LEDGER_STATUSES",
    "ENTRY_FIELDS",
    "add_note",
    "check_close_out",
    "entry_detail",
    "export",
    "ledger_rows",
    "on_move",
    "overdue_days",
    "states",
    "summary",
]
