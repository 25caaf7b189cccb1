"""Analysts: exports in the formats GIS tools want, and statistics."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from redline.export import FORMATS, check_options
from redline.safeio import user_crs
from redline.store import STATS_GROUPS

from .deps import SettingsDep, StoreDep, requires
from .filters import FlagQuery
from .schemas import Stats
from .work import export_task

router = APIRouter(tags=["analysts"])

ExportFormat = Literal["gpkg", "geojson", "fgb", "parquet", "csv", "kml", "shp"]
GroupBy = Literal["region", "zone", "activity", "severity", "status", "month", "source"]
# spelled out for the type checker; they must name exactly the engine's formats and groups
assert list(get_args(ExportFormat)) == list(FORMATS)
assert list(get_args(GroupBy)) == list(STATS_GROUPS)


@router.get(
    "/exports",
    summary="Export flags",
    dependencies=[requires("export")],
    response_class=FileResponse,
    responses={200: {"content": {media: {} for _, media in FORMATS.values()}}},
)
async def export(
    request: Request,
    settings: SettingsDep,
    flt: FlagQuery,
    format: Annotated[ExportFormat, Query(description="Output format.")] = "gpkg",
    crs: Annotated[str | None, Query(description="Output CRS, e.g. EPSG:4490 (default EPSG:4326).")] = None,
) -> Any:
    """The file is written whole in a private temp folder, streamed, then removed:
    a failure leaves no partial file anywhere."""
    if crs is not None:
        user_crs(crs)  # refused here, before any work is queued
    check_options(format, crs)  # e.g. GeoJSON is lon/lat only (RFC 7946)
    folder = tempfile.mkdtemp(prefix="redline-export-")
    try:
        suffix, media = FORMATS[format]
        path = Path(folder) / f"flags{suffix}"
        await request.app.state.work.run(export_task, settings.database_url, str(path), format, flt, crs)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path, media_type=media, filename=path.name, background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True)
    )


@router.get("/stats", response_model=Stats, summary="Counts and areas of flags", dependencies=[requires("stats")])
def stats(
    store: StoreDep, flt: FlagQuery, group_by: Annotated[GroupBy, Query(description="Grouping.")] = "severity"
) -> Any:
    return {"group_by": group_by, "groups": store.stats(group_by, flt)}
