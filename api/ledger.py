"""The rectification ledger (台账): one row per problem, as JSON, CSV or XLSX."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from redline.ledger import MEDIA_TYPES, add_note, ledger_rows, states, summary

from .deps import SettingsDep, StoreDep, requires
from .filters import FilterCrs, FilterLang, FlagQuery, parse_filter
from .params import BAD_PARAMETER, reject_unknown, route_parameters
from .schemas import Id
from .work import ledger_task

router = APIRouter(tags=["workflow"])


@router.get(
    "/ledger",
    summary="The rectification ledger",
    responses={
        200: {"content": {"application/json": {}, **{m: {} for m in MEDIA_TYPES.values()}}},
        403: {"description": "Admin units outside your jurisdiction"},
        **BAD_PARAMETER,
    },
)
async def get_ledger(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("read")],
    flt: FlagQuery,
    f: Annotated[
        Literal["json", "csv", "xlsx"], Query(description="json, csv or xlsx (with a summary sheet)")
    ] = "json",
    today: Annotated[date | None, Query(description="Count overdue days as of this date (default today)")] = None,
    filter: Annotated[str | None, Query(description="CQL2 filter over the flags' queryables.")] = None,
    filter_lang: FilterLang = None,
    filter_crs: FilterCrs = None,
) -> Any:
    """Problems inside your jurisdiction (verified violations, on their way to close-out, and
    closed ones): responsible, deadline, overdue days, whether the imagery still sees activity;
    the count in each ledger state (`states`) and the summary by admin unit (problems, rectified
    share, overdue). The flag filters of `/collections/flags/items` (status, severity, activity,
    admin, bbox, datetime, filter) narrow the rows and the counts alike; statuses off the ledger
    match nothing."""
    reject_unknown(request, route_parameters(request))
    if filter is not None or filter_lang or filter_crs:
        flt = replace(flt, cql=parse_filter("flags", filter, filter_lang, filter_crs))
    if f == "json":
        rows = await run_in_threadpool(ledger_rows, store, user, today, flt)
        return {"items": rows, "states": states(rows), "summary": summary(rows)}
    data = await request.app.state.work.run(ledger_task, settings.database_url, user, f, today, flt)
    return Response(
        data,
        media_type=MEDIA_TYPES[f],
        headers={"Content-Disposition": f'attachment; filename="ledger.{f}"', "Cache-Control": "private, no-store"},
    )


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(min_length=1, max_length=4000, description="The progress made")
    on: date | None = Field(None, description="The day the progress was made (default today)")


class NoteOut(BaseModel):
    id: int
    flag_id: int
    noted_on: date
    note: str
    actor: str
    at: str


@router.post(
    "/flags/{flag_id}/ledger/notes",
    response_model=NoteOut,
    status_code=201,
    summary="Add a dated progress note to a problem on the ledger",
    responses={
        403: {"description": "The flag is outside your jurisdiction"},
        409: {"description": "The flag is not on the rectification ledger"},
    },
)
def post_note(flag_id: Id, body: NoteIn, store: StoreDep, user: Annotated[Any, requires("workflow")]) -> Any:
    """The same rules and audit as `redline ledger note`: inspectors inside their jurisdiction,
    admins anywhere; the flag must be on the ledger (verified violation and later)."""
    return add_note(store, flag_id, body.note, user.name, user, body.on)
