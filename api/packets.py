"""Field packets for inspectors: GeoPackage, KML, GPX, problem sheets and a manifest, one zip."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from redline.packet import MEDIA_TYPE

from .deps import SettingsDep, requires
from .filters import FlagQuery
from .work import packet_task

router = APIRouter(tags=["workflow"])


@router.get(
    "/packet",
    summary="A field packet of flags (zip: GeoPackage, KML, GPX, problem sheets)",
    response_class=FileResponse,
    responses={
        200: {"content": {MEDIA_TYPE: {}}},
        403: {"description": "Admin units outside your jurisdiction, or a role that does no field work"},
        422: {"description": "No flags match, or more than a packet holds (narrow the filters)"},
    },
)
async def packet(
    request: Request,
    settings: SettingsDep,
    flt: FlagQuery,
    user: Annotated[Any, requires("workflow")],
    sheets: Annotated[
        bool,
        Query(description="Include the problem sheets (PDF), for at most `packet_max_sheets` flags (5 by default)."),
    ] = False,
) -> Any:
    """What a field team takes offline for the flags that match the filters, inside the caller's
    jurisdiction (at most `packet_max_flags`): `flags.gpkg` (layers flags with a QGIS style,
    flag_points, zones), `flags.kml` (placemarks styled by severity), `flags.gpx` (waypoints named by
    flag id), with `sheets=true` the problem sheets `problem-sheets.pdf` (when PDF rendering is
    available and at most `packet_max_sheets` flags match; else the manifest says why), `manifest.json`
    and `README.txt` (counts, filters, SHA-256 of each file). Built in a worker, streamed, then removed."""
    folder = tempfile.mkdtemp(prefix="redline-packet-")
    try:
        path = Path(folder) / "redline-packet.zip"
        await request.app.state.work.run(packet_task, settings.database_url, str(path), user, flt, settings, sheets)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(
        path,
        media_type=MEDIA_TYPE,
        filename=path.name,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
