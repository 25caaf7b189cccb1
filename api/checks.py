"""Inspectors: region checks and footprint screenings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from redline.check import check_region
from redline.errors import InputError
from redline.rules import load_rules
from redline.screening import screen

from .deps import SettingsDep, StoreDep, requires
from .inputs import parse_datetime_interval, region_from_geojson, region_from_upload
from .schemas import CheckAnswer, ScreeningAnswer, ScreeningRequest

router = APIRouter(tags=["inspectors"])

REGION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object", "description": "GeoJSON geometry, Feature or "
                                            "FeatureCollection", "required": ["type"],
                                            "properties": {"type": {"type": "string"}}}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "GeoPackage, zipped shapefile, KML or GeoJSON"}}}},
        },
    }
}


@router.post("/checks", response_model=CheckAnswer, openapi_extra=REGION_BODY,
             dependencies=[requires("check")], summary="Conflict check over a region")
async def post_check(
    request: Request, store: StoreDep, settings: SettingsDep,
    crs: Annotated[str | None, Query(description="CRS of the region (default CRS84; EPSG:4490 accepted).")] = None,
    datetime: Annotated[str | None, Query(description="Period: RFC 3339 interval a/b (.. for open).")] = None,
) -> Any:
    """Zones touched (ha, mu), flags inside, and imagery coverage, so that "no change"
    is told apart from "not observed"."""
    since, until = parse_datetime_interval(datetime)
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise InputError("multipart body needs a 'file' part")
        region = region_from_upload(upload, crs, settings)
    elif ctype.startswith(("application/json", "application/geo+json")):
        try:
            doc = await request.json()
        except ValueError:
            raise InputError("body is not valid JSON") from None
        region = region_from_geojson(doc, crs, settings)
    else:
        raise InputError("send the region as GeoJSON (application/json) or as a file (multipart/form-data)")
    return check_region(store, region, since, until)


@router.post("/screenings", response_model=ScreeningAnswer, dependencies=[requires("check")],
             summary="Pre-check a proposed project footprint")
def post_screening(body: ScreeningRequest, store: StoreDep, settings: SettingsDep) -> Any:
    """Per zone touched a verdict (prohibited / needs_approval / clear) from the rules;
    for a footprint outside every red line, the distance to the nearest one."""
    footprint = region_from_geojson(body.footprint, body.crs, settings)
    return screen(store, footprint, body.activity, load_rules(settings.rules_path))
