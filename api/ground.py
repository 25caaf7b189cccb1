"""Ground reports: a problem found in the field (or reported by phone) becomes a flag with
source ground, or an observation of the flag it lies on, with its photos as evidence."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile
from pydantic import BaseModel

from redline.ground import MAX_PHOTOS, Photo, ground_geometry, report_ground
from redline.regions import parse_json

from .deps import SettingsDep, StoreDep, requires
from .inputs import region_limits
from .schemas import Activity

router = APIRouter(tags=["workflow"])


class GroundReport(BaseModel):
    flag_id: int
    new: bool
    status: str
    source_ref: str
    evidence: list[int]


@router.post(
    "/reports/ground",
    response_model=GroundReport,
    status_code=201,
    summary="Report a problem found on the ground",
    responses={403: {"description": "The place (or the flag it lies on) is outside your jurisdiction"}},
)
def post_ground_report(
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("workflow")],
    geometry: Annotated[
        str, Form(max_length=2_000_000, description="GeoJSON Point or Polygon (geometry or Feature), lon/lat")
    ],
    activity: Annotated[Activity, Form(description="What is going on: mining, road, 采矿, 光伏...")],
    note: Annotated[str, Form(min_length=1, max_length=4000, description="What was found")],
    observed_on: Annotated[date | None, Form(description="The day it was seen (default today)")] = None,
    ref: Annotated[
        str | None, Form(max_length=100, description="The report's own reference (e.g. a hotline ticket)")
    ] = None,
    photos: Annotated[
        list[UploadFile] | None, File(description=f"JPEG/PNG photos or PDF documents (at most {MAX_PHOTOS})")
    ] = None,
) -> Any:
    """Inspectors report inside their jurisdiction. A point stands for the ground within 30 m of
    it; on an existing flag the report is a new observation of that flag (never a duplicate),
    elsewhere a new flag with source ``ground`` in the same workflow."""
    place = ground_geometry(parse_json(geometry, "geometry"), "geometry", region_limits(settings))
    return report_ground(
        store,
        place,
        activity,
        note,
        user,
        photos=[Photo(p.file, p.filename) for p in photos or []],
        observed_on=observed_on,
        ref=ref,
        settings=settings,
    )
