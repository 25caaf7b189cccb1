"""Security tests run against the same app as tests/api: the sample scenario scanned on both
backends, one token per role (inspectors bound to XIN or YIHE)."""

from __future__ import annotations

from ..api.conftest import XIN, YIHE, assert_problem, auth, client, env  # noqa: F401  (fixtures)

__all__ = ["XIN", "YIHE", "assert_problem", "auth", "client", "env"]


# --- hostile inputs (test_hostile_inputs.py): detection fixtures, see hostile.py ----------------
import pytest  # noqa: E402

from .hostile import Canary, Listener  # noqa: E402


@pytest.fixture
def canary(tmp_path_factory):
    """A pipe that records being opened and a file that records being read, with a secret."""
    c = Canary(tmp_path_factory.mktemp("outside"))
    yield c
    c.close()


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 recording every connection attempt."""
    s = Listener()
    yield s
    s.close()
