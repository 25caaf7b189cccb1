"""The rectification ledger (台账): one row per problem, as JSON, CSV or XLSX."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from redline.ledger import MEDIA_TYPES, ledger_rows, summary

from .deps import SettingsDep, StoreDep, requires
from .work import ledger_task

router = APIRouter(tags=["workflow"])


@router.get(
    "/ledger",
    summary="The rectification ledger",
    responses={200: {"content": {"application/json": {}, **{m: {} for m in MEDIA_TYPES.values()}}}},
)
async def get_ledger(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("read")],
    f: Annotated[
        Literal["json", "csv", "xlsx"], Query(description="json, csv or xlsx (with a summary sheet)")
    ] = "json",
    today: Annotated[date | None, Query(description="Count overdue days as of this date (default today)")] = None,
) -> Any:
    """Problems inside your jurisdiction (verified violations, on their way to close-out, and
    closed ones): responsible, deadline, overdue days, whether the imagery still sees activity;
    and the summary by admin unit (problems, rectified share, overdue)."""
    if f == "json":
        rows = await run_in_threadpool(ledger_rows, store, user, today)
        return {"items": rows, "summary": summary(rows)}
    data = await request.app.state.work.run(ledger_task, settings.database_url, user, f, today)
    return Response(
        data,
        media_type=MEDIA_TYPES[f],
        headers={"Content-Disposition": f'attachment; filename="ledger.{f}"', "Cache-Control": "private, no-store"},
    )
