"""The one clock the engine and the stores stamp records with."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> str:
    """The current time in UTC, to the second, as ISO 8601 text (``2026-06-20T08:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
