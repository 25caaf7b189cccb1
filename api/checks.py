"""Inspectors: region checks and footprint screenings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from redline.auth import Principal
from redline.errors import InputError

from .deps import SettingsDep, requires
from .flags import report_response
from .inputs import parse_datetime_interval, region_limits, saved_upload
from .schemas import CheckAnswer, ScreeningAnswer, ScreeningRequest
from .work import check_report_task, check_task, screening_report_task, screening_task

router = APIRouter(tags=["inspectors"])


def encoded_json(content: bytes) -> Response:
    """An answer the worker already validated against the response model and encoded."""
    return Response(content, media_type="application/json")


REGION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "GeoJSON geometry, Feature or FeatureCollection",
                    "required": ["type"],
                    "properties": {"type": {"type": "string"}},
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "GeoPackage, zipped shapefile, KML or GeoJSON",
                        }
                    },
                }
            },
        },
    }
}


@router.post(
    "/checks",
    response_model=CheckAnswer,
    openapi_extra=REGION_BODY,
    summary="Conflict check over a region",
    responses={200: {"content": {"application/pdf": {}, "text/html": {}}}},
)
async def post_check(
    request: Request,
    settings: SettingsDep,
    user: Annotated[Principal, requires("check")],
    crs: Annotated[str | None, Query(description="CRS of the region (default CRS84; EPSG:4490 accepted).")] = None,
    datetime: Annotated[str | None, Query(description="Period: RFC 3339 interval a/b (.. for open).")] = None,
    f: Annotated[
        Literal["pdf", "html"] | None, Query(description="The check report (pdf or html) instead of JSON.")
    ] = None,
) -> Any:
    """Zones touched (ha, mu), flags inside (only those of the caller's jurisdiction), and
    imagery coverage, so that "no change" is told apart from "not observed": per zone and per
    scan, and as a map layer, ``not_observed`` (the part of the region no scan saw, simplified;
    null when imagery saw all of it)."""
    since, until = parse_datetime_interval(datetime)
    # ?f=pdf|html: the same check, answered with its report (map, tables, provenance)
    task, extra = (check_task, ()) if f is None else (check_report_task, (f, settings.basemap_url))
    reply = encoded_json if f is None else (lambda data: report_response(data, f, "check"))
    work = request.app.state.work
    args = (settings.database_url, user)
    tail = (crs, since, until, region_limits(settings))
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("multipart body needs a 'file' part")
        async with saved_upload(upload) as saved:
            return reply(await work.run(task, *args, None, saved, *tail, *extra))
    if ctype.startswith(("application/json", "application/geo+json")):
        return reply(await work.run(task, *args, await request.body(), None, *tail, *extra))
    raise InputError("send the region as GeoJSON (application/json) or as a file (multipart/form-data)")


@router.post(
    "/screenings",
    response_model=ScreeningAnswer,
    summary="Pre-check a proposed project footprint",
    responses={200: {"content": {"application/pdf": {}, "text/html": {}}}},
)
async def post_screening(
    body: ScreeningRequest,
    request: Request,
    settings: SettingsDep,
    user: Annotated[Principal, requires("check")],
    f: Annotated[
        Literal["pdf", "html"] | None, Query(description="The screening report (pdf or html) instead of JSON.")
    ] = None,
) -> Any:
    """Per red line, reserve zone and environmental control unit touched a verdict (prohibited /
    needs_approval / clear) from the rules or the unit's access list (the entry cited), with the
    overlap (ha, mu, geometry); the nearest red line and reserve zone; what lies within 1, 5 and
    10 km. The activity may be any synonym the CLI takes (solar, 光伏, road, 道路...)."""
    args = (
        settings.database_url,
        body.footprint,
        body.crs,
        body.activity,
        settings.rules_path,
        region_limits(settings),
    )
    work = request.app.state.work
    if f is None:
        return encoded_json(await work.run(screening_task, *args))
    report = await work.run(screening_report_task, *args, f, user, settings.basemap_url)
    return report_response(report, f, "screening")
