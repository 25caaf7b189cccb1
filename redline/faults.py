"""Fault injection for the crash tests: die with SIGKILL at a named point.

``REDLINE_KILL_AT=point`` (or ``point:n``, the n-th time it is reached) makes
:func:`checkpoint` kill the process there. Unset, a checkpoint costs one dict look-up.
The nightly batch reads its own variable (``REDLINE_NIGHTLY_KILL_AT``, ``env``), kept for its tests.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "REDLINE_KILL_AT"
_hits: dict[tuple[str, str], int] = {}


def checkpoint(point: str, env: str = KILL_ENV) -> None:
    """Die here with SIGKILL when the variable ``env`` names this point (tests only)."""
    spec = os.environ.get(env)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _hits[env, point] = _hits.get((env, point), 0) + 1
    if _hits[env, point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
