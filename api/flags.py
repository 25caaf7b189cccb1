"""The Green Shield workflow: flag detail, status moves, history, field evidence."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from redline.evidence import evidence_path, save_evidence
from redline.reports import MEDIA_TYPES
from redline.workflow import flag_detail, move

from .deps import CurrentUser, SettingsDep, StoreDep, requires
from .schemas import Evidence, FlagDetail, FlagPatch, HistoryEntry, Id
from .work import flag_report_task

router = APIRouter(prefix="/flags", tags=["workflow"])


def report_response(data: bytes, fmt: str, name: str) -> Response:
    """A rendered report (redline.reports). The HTML needs nothing but its inline styles and
    data: images: served as a page that can load and run nothing."""
    return Response(
        data,
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'inline; filename="{name}.{fmt}"',
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        },
    )


def _visible_flag(store, flag_id: int, user) -> dict:
    flag = store.flag(flag_id)
    user.require_flag(flag)
    return flag


@router.get("/{flag_id}", response_model=FlagDetail, summary="A flag with conflicts and observations")
def get_flag(flag_id: Id, store: StoreDep, user: CurrentUser) -> Any:
    return flag_detail(store, flag_id, user)


@router.patch(
    "/{flag_id}",
    response_model=FlagDetail,
    summary="Move a flag through the workflow",
    responses={
        409: {
            "description": "Illegal transition (`allowed` lists the legal next states), or a"
            " close-out lacking evidence, approval or recovery (`missing`)"
        }
    },
)
def patch_flag(
    flag_id: Id, body: FlagPatch, store: StoreDep, settings: SettingsDep, user: Annotated[Any, requires("workflow")]
) -> Any:
    _visible_flag(store, flag_id, user)
    ledger = body.model_dump(include={"responsible", "person", "measures", "deadline", "plan"}, exclude_none=True)
    move(
        store,
        flag_id,
        body.status,
        actor=user.name,
        note=body.note,
        principal=user,
        ledger=ledger,
        override_reason=body.override_reason,
        settings=settings,
    )
    return get_flag(flag_id, store, user)


@router.get("/{flag_id}/history", response_model=list[HistoryEntry], summary="Audit trail of a flag")
def history(flag_id: Id, store: StoreDep, user: CurrentUser) -> Any:
    _visible_flag(store, flag_id, user)
    return store.history(flag_id)


@router.get(
    "/{flag_id}/report",
    summary="The problem sheet of a flag (field verification form)",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "text/html": {}}}},
)
async def flag_report(
    flag_id: Id,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    user: CurrentUser,
    f: Annotated[Literal["pdf", "html"], Query(description="pdf (A4, for printing) or html (self-contained)")] = "pdf",
) -> Any:
    """Location (CGCS2000), zone, activity, areas, observations, a map, image chips from the change
    products, status history, evidence photos and blank fields for the field team."""
    await run_in_threadpool(_visible_flag, store, flag_id, user)
    data = await request.app.state.work.run(
        flag_report_task, settings.database_url, user, flag_id, f, settings.evidence_dir, settings.basemap_url
    )
    return report_response(data, f, f"flag-{flag_id}")


@router.post("/{flag_id}/evidence", response_model=Evidence, status_code=201, summary="Attach field evidence")
def add_evidence(
    flag_id: Id,
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("evidence")],
    file: Annotated[
        UploadFile,
        File(
            description="JPEG/HEIC/PNG photo or PDF document; a JPEG or HEIC photo's EXIF GPS position and time"
            " are read (the answer's distance_m to the flag, and a warning when it is too far)"
        ),
    ],
    lon: Annotated[float | None, Form(ge=-180, le=180)] = None,
    lat: Annotated[float | None, Form(ge=-90, le=90)] = None,
    note: Annotated[str | None, Form(max_length=4000)] = None,
) -> Any:
    _visible_flag(store, flag_id, user)
    return save_evidence(
        store,
        settings.evidence_dir,
        flag_id,
        file.file,
        original_name=file.filename,
        actor=user.name,
        lon=lon,
        lat=lat,
        note=note,
        max_bytes=settings.max_evidence_bytes,
        max_distance_m=settings.evidence_max_distance_m,
    )


@router.get("/{flag_id}/evidence", response_model=list[Evidence], summary="Evidence attached to a flag")
def list_evidence(flag_id: Id, store: StoreDep, user: CurrentUser) -> Any:
    _visible_flag(store, flag_id, user)
    return store.evidence(flag_id)


evidence_router = APIRouter(tags=["workflow"])


@evidence_router.get(
    "/evidence/{evidence_id}",
    summary="Download one evidence file",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "application/pdf": {}}}},
)
def download_evidence(evidence_id: Id, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> Any:
    item, path = evidence_path(store, settings.evidence_dir, evidence_id)
    _visible_flag(store, item["flag_id"], user)
    # Always a download, never rendered inline, and never re-sniffed by the browser as HTML/script.
    return FileResponse(
        path,
        media_type=item["content_type"],
        filename=f"evidence-{evidence_id}{path.suffix}",
        content_disposition_type="attachment",
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
