"""The Green Shield verification workflow: which status may follow which.

new → dispatched → (verified_violation | false_positive | permitted) → rectifying
→ rectified → closed. A rectified site that turns out not to be may go back to
rectifying. Moves are recorded in the audit log with who, when and a note. A scan that sees
the place of a flag again adds an observation and never changes its status, so a
flag judged false_positive or permitted is not dispatched again.
"""

from __future__ import annotations

from datetime import date

from .auth import Principal
from .config import DEFAULTS, Settings
from .errors import ConflictError, InputError
from .model import FlagDetail
from .store import Store
from .vocab import FLAG_STATUSES

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "new": ("dispatched",),
    "dispatched": ("verified_violation", "false_positive", "permitted"),
    "verified_violation": ("rectifying",),
    "false_positive": ("closed",),
    "permitted": ("closed",),
    "rectifying": ("rectified",),
    "rectified": ("closed", "rectifying"),
    "closed": (),
}


class TransitionError(ConflictError):
    """An illegal status change; ``allowed`` lists the legal next states."""

    def __init__(self, message: str, allowed: tuple[str, ...]):
        super().__init__(message)
        self.allowed = allowed


def allowed_next(status: str) -> tuple[str, ...]:
    return TRANSITIONS.get(status, ())


def flag_detail(store: Store, flag_id: int, principal: Principal, history: bool = False) -> FlagDetail:
    """One flag as people read it (API, CLI, reports): its fields, conflicts by zone,
    observations over time, the moves allowed next and, optionally, its history; refused
    outside ``principal``'s jurisdiction. On the ledger it carries ``ledger`` (the entry, overdue
    days, whether activity persists); with ``history`` the audit trail (both extra fields)."""
    flag = store.flag(flag_id)
    principal.require_flag(flag)
    flag.pop("geometry", None)
    flag["conflicts"] = store.conflicts(flag_id)
    flag["observations"] = [{k: v for k, v in o.items() if k != "geometry"} for o in store.observations(flag_id)]
    flag["allowed_next"] = list(allowed_next(flag["status"]))
    entry = store.rectification(flag_id)
    if entry is not None:  # on the rectification ledger (redline.ledger)
        from .ledger import activity_persists, overdue_days

        flag["ledger"] = {k: v for k, v in entry.items() if k not in ("id", "flag_id")}
        flag["ledger"]["overdue_days"] = overdue_days(entry, flag["status"], date.today())
        flag["ledger"]["activity_persists"] = activity_persists(flag, store.history(flag_id), flag["observations"])
    if history:
        flag["history"] = store.history(flag_id)
    return FlagDetail.model_validate(flag)


def move(
    store: Store,
    flag_id: int,
    to: str,
    actor: str,
    note: str | None = None,
    *,
    principal: Principal | None = None,
    ledger: dict | None = None,
    override_reason: str | None = None,
    today: date | None = None,
    settings: Settings = DEFAULTS,
) -> dict:
    """Move a flag to status ``to``; returns the updated flag (without geometry).

    The one implementation of a move, for the API (``PATCH /flags/{id}``) and the CLI
    (``redline flags move``). Moves into the rectification ledger's statuses also write the
    ledger (redline.ledger): ``ledger`` holds the entry's fields given on the move
    (responsible, person, measures, deadline, plan); closing a rectified flag needs
    ``principal`` to hold the ``close`` permission, completion evidence and, for the activities
    in ``settings.close_requires_recovery_for``, a "recovered" verdict or ``override_reason``.
    ``today`` (default: the clock's) dates verification, progress notes and close-out.
    """
    from . import ledger as L

    if to not in FLAG_STATUSES:
        raise InputError(f"unknown status {to!r}; expected one of {', '.join(FLAG_STATUSES)}")
    fields = L.entry_fields(ledger)
    today = today or date.today()
    with store.transaction():
        flag = store.flag(flag_id)
        current = flag["status"]
        allowed = allowed_next(current)
        if to not in allowed:
            raise TransitionError(
                f"flag {flag_id} cannot move from {current} to {to}; "
                f"allowed: {', '.join(allowed) if allowed else 'none (final state)'}",
                allowed,
            )
        if current == "rectified" and to == "closed":
            L.check_close_out(store, flag, principal, override_reason, settings)
        extra = L.on_move(store, flag, to, actor, note, fields, override_reason, principal, today)
        store.update_flag(flag_id, {"status": to})
        store.audit(flag_id, actor, "status", {"from": current, "to": to, "note": note, **extra})
    out = store.flag(flag_id)
    out.pop("geometry", None)
    return out
