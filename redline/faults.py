"""Fault injection for the crash tests: die with SIGKILL at a named point.

``REDLINE_KILL_AT=point`` (or ``point:n``, the n-th time it is reached) makes
:func:`checkpoint` kill the process there. Unset, a checkpoint costs one dict look-up.
The nightly batch has its own variable (``REDLINE_NIGHTLY_KILL_AT``), kept for its tests.
"""

from __future__ import annotations

import os
import signal

KILL_ENV = "REDLINE_KILL_AT"
_hits: dict[str, int] = {}


def checkpoint(point: str) -> None:
    spec = os.environ.get(KILL_ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
