"""The one clock the engine and the stores stamp records with."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> str:
    """The current time in UTC, to the second, as ISO 8601 text (``2026-06-20T08:00:00+00:00``)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
