"""Engine exceptions → HTTP status, in one place; every error is application/problem+json."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from redline import errors
from redline.workflow import TransitionError

PROBLEM = "application/problem+json"

# Most specific first: the first matching class decides.
STATUS_MAP: tuple[tuple[type[Exception], int], ...] = (
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.NotFoundError, 404),
    (errors.MissingFileError, 404),
    (errors.ConflictError, 409),
    (errors.TooLargeError, 413),
    (errors.InputError, 422),
    (errors.StoreError, 503),
    (errors.BusyError, 503),
    (errors.RedlineError, 400),
)


def problem(status: int, title: str, detail: str | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_for(exc: Exception) -> int:
    return next(code for cls, code in STATUS_MAP if isinstance(exc, cls))


PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "RFC 9457 problem details: every error this API answers.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A URI reference; about:blank here."},
        "title": {"type": "string", "description": "The error class, e.g. PermissionDeniedError."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "On an illegal workflow move: the legal next states.",
        },
        "errors": {
            "type": "array",
            "description": "On 422: every invalid field.",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}

# status -> description, for the statuses every operation may answer under the conditions below
ERROR_DESCRIPTIONS = {
    401: "No bearer token, or one that is invalid or revoked",
    403: "The token's role or jurisdiction does not allow this",
    404: "Not found",
    413: "The request body or upload exceeds a size limit",
    422: "Invalid request",
    503: "The store is unavailable, or the work ran past its time limit",
}


def _dependency_calls(dependant) -> set:
    calls, todo = set(), [dependant]
    while todo:
        d = todo.pop()
        if d.call is not None:
            calls.add(d.call)
        todo.extend(d.dependencies)
    return calls


def _api_routes(app: FastAPI) -> list[APIRoute]:
    try:  # FastAPI >= 0.120 keeps included routers unflattened
        from fastapi.routing import iter_route_contexts

        routes = [c.original_route for c in iter_route_contexts(app.routes)]
    except ImportError:
        routes = list(app.routes)
    return [r for r in routes if isinstance(r, APIRoute)]


def document_problems(app: FastAPI, schema: dict) -> dict:
    """Declare, on each operation of an OpenAPI document, the error statuses it can answer,
    all as ``application/problem+json`` with one ``Problem`` schema: 401/403 where a token is
    needed, 413 where there is a body, 422 where there is any input, 503 where the store is
    used. Error responses a route declares itself get the same content."""
    from .deps import current_user, get_store

    schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for route in _api_routes(app):
        calls = _dependency_calls(route.dependant)
        for method in route.methods or ():
            op = schema.get("paths", {}).get(route.path_format, {}).get(method.lower())
            if op is None:
                continue
            responses = op.setdefault("responses", {})
            statuses = set()
            if current_user in calls:
                statuses |= {401, 403}
            if "requestBody" in op:
                statuses |= {413, 422}
            if op.get("parameters"):
                statuses.add(422)
            if any(p.get("in") == "path" for p in op.get("parameters", ())):
                statuses.add(404)
            if get_store in calls:
                statuses.add(503)
            for status in statuses:
                responses.setdefault(str(status), {"description": ERROR_DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status[:1] in ("4", "5"):
                    response["content"] = dict(content)
                    response.setdefault(
                        "description", ERROR_DESCRIPTIONS.get(int(status) if status.isdigit() else 0, "Error")
                    )
    text = json.dumps(schema.get("paths", {}))
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, now replaced
        if f"#/components/schemas/{name}" not in text:
            schema["components"]["schemas"].pop(name, None)
    return schema


def install(app: FastAPI) -> None:
    original_openapi = app.openapi

    def openapi() -> dict:
        """The generated document, with its error responses declared once (document_problems)."""
        schema = original_openapi()  # cached by FastAPI; regenerated when routes change
        if "Problem" not in schema.get("components", {}).get("schemas", {}):
            document_problems(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(errors.RedlineError)
    async def _redline(request: Request, exc: errors.RedlineError):
        status = status_for(exc)
        extra = {"allowed": list(exc.allowed)} if isinstance(exc, TransitionError) else {}
        response = problem(status, type(exc).__name__, str(exc), **extra)
        if isinstance(exc, errors.BusyError):
            response.headers["Retry-After"] = "5"
        return response

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError):  # a body nested thousands deep
        return problem(422, "Invalid request", "JSON nested too deeply")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        return problem(422, "Invalid request", detail, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail) if exc.status_code < 500 else "Server error", str(exc.detail))
