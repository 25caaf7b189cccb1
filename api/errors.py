"""Engine exceptions → HTTP status, in one place; every error is application/problem+json."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    (errors.RedlineError, 400),
)


def problem(status: int, title: str, detail: str | None = None, **extra) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_for(exc: Exception) -> int:
    return next(code for cls, code in STATUS_MAP if isinstance(exc, cls))


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.RedlineError)
    async def _redline(request: Request, exc: errors.RedlineError):
        status = status_for(exc)
        extra = {"allowed": list(exc.allowed)} if isinstance(exc, TransitionError) else {}
        return problem(status, type(exc).__name__, str(exc), **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        errs = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        return problem(422, "Invalid request", detail, errors=errs)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, str(exc.detail) if exc.status_code < 500 else "Server error",
                       str(exc.detail))
