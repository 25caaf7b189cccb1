"""Query parameters a route does not know are refused (400), never silently ignored."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from redline.errors import RedlineError


class UnknownParameterError(RedlineError):
    """A query parameter the operation does not define (answered 400, naming it)."""


class BadParameterError(RedlineError):
    """A query parameter with a value the operation cannot use (answered 400)."""


BAD_PARAMETER: dict[int | str, dict[str, Any]] = {
    400: {"description": "A query parameter the operation does not define, or an invalid filter"}
}


def reject_unknown(request: Request, allowed: Iterable[str]) -> None:
    allowed = set(allowed)
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        raise UnknownParameterError(
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"this operation takes: {', '.join(sorted(allowed)) or 'none'}"
        )


def route_parameters(request: Request) -> set[str]:
    """The query parameters the matched route declares (its dependencies' included)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    names, todo = set(), [dependant] if dependant else []
    while todo:
        d = todo.pop()
        names |= {p.alias for p in d.query_params}
        todo.extend(d.dependencies)
    return names
