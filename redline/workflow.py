"""The Green Shield verification workflow: which status may follow which.

new → dispatched → (verified_violation | false_positive | permitted) → rectifying
→ rectified → closed. A rectified site that turns out not to be may go back to
rectifying. Moves are recorded in the audit log with who, when and a note. A scan that sees
the place of a flag again adds an observation and never changes its status, so a
flag judged false_positive or permitted is not dispatched again.
"""

from __future__ import annotations

from .auth import Principal
from .errors import ConflictError, InputError
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


def flag_detail(store: Store, flag_id: int, principal: Principal, history: bool = False) -> dict:
    """One flag as people read it (API, CLI, reports): its fields, conflicts by zone,
    observations over time, the moves allowed next and, optionally, its history; refused
    outside ``principal``'s jurisdiction."""
    flag = store.flag(flag_id)
    principal.require_flag(flag)
    flag.pop("geometry", None)
    flag["conflicts"] = store.conflicts(flag_id)
    flag["observations"] = [{k: v for k, v in o.items() if k != "geometry"} for o in store.observations(flag_id)]
    flag["allowed_next"] = list(allowed_next(flag["status"]))
    if history:
        flag["history"] = store.history(flag_id)
    return flag


def move(store: Store, flag_id: int, to: str, actor: str, note: str | None = None) -> dict:
    """Move a flag to status ``to``; returns the updated flag (without geometry)."""
    if to not in FLAG_STATUSES:
        raise InputError(f"unknown status {to!r}; expected one of {', '.join(FLAG_STATUSES)}")
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
        store.update_flag(flag_id, {"status": to})
        store.audit(flag_id, actor, "status", {"from": current, "to": to, "note": note})
    out = store.flag(flag_id)
    out.pop("geometry", None)
    return out
