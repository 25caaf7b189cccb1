"""National leads (线索) through the API: a batch's file in, its verification results back out.

The same engine as ``redline leads import|export`` (redline.leads): the file is identified by its
content (vector files only through redline.safeio's checked drivers, XLSX and CSV parsed in
Python), read and recorded in a worker, batch + lead id the idempotency key. A file refused for
any reason writes nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask

from redline.leads import LeadLimits, parse_mapping

from .deps import SettingsDep, requires
from .inputs import region_limits, saved_upload
from .params import BAD_PARAMETER, reject_unknown
from .work import leads_export_task, leads_import_task

router = APIRouter(tags=["workflow"])

# ?f= -> (the file's suffix, its media type)
EXPORTS = {
    "xlsx": (".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "zip": (".zip", "application/zip"),  # a zipped shapefile
}


class RefusedLead(BaseModel):
    lead_id: str
    reason: str


class LeadImport(BaseModel):
    batch: str
    leads: int
    new_flags: list[int]
    observed_flags: list[int]
    unchanged: int
    outside: list[str]
    refused: list[RefusedLead]


@router.post(
    "/leads",
    response_model=LeadImport,
    summary="Import a batch of national leads",
    responses={
        403: {"description": "A role that does no workflow"},
        413: {"description": "The file is over the upload or unpacking limits"},
        422: {"description": "Not a lead file (one clear error; nothing written)"},
        **BAD_PARAMETER,
    },
)
async def post_leads(
    request: Request,
    settings: SettingsDep,
    user: Annotated[Any, requires("workflow")],
    file: Annotated[
        UploadFile, File(description="Zipped shapefile, GeoPackage (or another checked vector format), XLSX or CSV")
    ],
    batch: Annotated[str, Form(min_length=1, max_length=200, description="The batch id the platform gave the leads")],
    mapping: Annotated[
        str | None,
        Form(
            max_length=10_000,
            description='Column mapping, JSON or TOML: {"lead_id": "COL", "lon": "COL", "lat": "COL", '
            '"activity": "COL", "date": "COL", "crs": "EPSG:4490"}',
        ),
    ] = None,
) -> Any:
    """The same import as `redline leads import`: new leads become flags with source `national`,
    a lead on an existing flag is an observation of it, a lead already imported in the batch is
    left alone (`unchanged`). Inspectors import inside their jurisdiction: a lead whose flag would
    lie (or lies) outside it is `refused`, with the reason, and nothing of it is written."""
    reject_unknown(request, ())
    fields = parse_mapping(mapping, "mapping") if mapping is not None else None
    limits = LeadLimits(files=region_limits(settings).files)
    async with saved_upload(file) as saved:
        return await request.app.state.work.run(
            leads_import_task, settings.database_url, user, saved, batch, fields, settings, limits
        )


@router.get(
    "/leads/{batch}",
    summary="A batch's verification results",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for _, media in EXPORTS.values()}},
        404: {"description": "No leads of this batch (inside your jurisdiction)"},
        **BAD_PARAMETER,
    },
)
async def get_leads(
    request: Request,
    settings: SettingsDep,
    user: Annotated[Any, requires("read")],
    batch: str,
    f: Annotated[
        Literal["xlsx", "csv", "gpkg", "zip"], Query(description="xlsx, csv, gpkg or zip (a zipped shapefile)")
    ] = "xlsx",
) -> Any:
    """The file `redline leads export` writes: each lead's id and original columns (in its own CRS
    for the vector formats), then `flag_id`, `status`, `finding` (violation / false positive /
    permitted / pending), `note`, `verified`, `deadline`, `closed_on`; the leads whose flags are
    inside your jurisdiction."""
    reject_unknown(request, ("f",))
    suffix, media = EXPORTS[f]
    folder = tempfile.mkdtemp(prefix="redline-leads-")
    try:
        path = Path(folder) / f"leads{suffix}"
        await request.app.state.work.run(leads_export_task, settings.database_url, user, batch, str(path))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=media,
        filename=f"leads-results{suffix}",  # the batch id is the client's text: not in a header
        headers={"Cache-Control": "private, no-store"},
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
