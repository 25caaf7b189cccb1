"""Run the ``redline`` CLI with one engine function made deadly (for test_faults.py).

``KILL_IN=module:attr.path:when:n``: the n-th call of ``attr.path`` in ``module`` SIGKILLs
the process ``before`` the real call or ``after`` it returns. A context manager (a store's
``transaction``) is killed on entering (``before``) or once its body has run (``after``).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from contextlib import contextmanager

spec = os.environ.pop("KILL_IN")
module_name, path, when, nth = spec.split(":")
owner = importlib.import_module(module_name)
*parents, name = path.split(".")
for part in parents:
    owner = getattr(owner, part)
original = getattr(owner, name)
calls = 0


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def deadly(*args, **kwargs):
    global calls
    calls += 1
    if calls == int(nth) and when == "before":
        _die()
    result = original(*args, **kwargs)
    if calls == int(nth) and when == "after":
        _die()
    return result


if name == "transaction":

    @contextmanager
    def deadly(*args, **kwargs):  # noqa: F811
        global calls
        calls += 1
        if calls == int(nth) and when == "before":
            _die()
        with original(*args, **kwargs) as value:
            yield value
            if calls == int(nth) and when == "after":
                _die()


setattr(owner, name, deadly)

from redline.cli import main  # noqa: E402

main(sys.argv[1:])
