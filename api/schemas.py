"""Request and response models: the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from redline.model import Flag
from redline.vocab import ACTIVITIES, FLAG_STATUSES, SEVERITIES

# Store ids are SQLite/PostgreSQL 64-bit integers: refuse anything else at the edge.
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

Status = Literal[FLAG_STATUSES]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
Activity = Literal[ACTIVITIES]  # type: ignore[valid-type]


class Area(BaseModel):
    ha: float
    mu: float


class Health(BaseModel):
    status: str
    version: str


class Conflict(BaseModel):
    model_config = ConfigDict(extra="allow")
    layer: str
    layer_version: int
    zone_name: str
    regime: str
    overlap_ha: float
    overlap_mu: float
    severity: str | None
    rule: str | None


class Observation(BaseModel):
    model_config = ConfigDict(extra="allow")
    scan_id: int
    product_id: str
    sensor: str | None
    observed_on: str
    activity: str
    confidence: str
    score: float | None
    area_ha: float
    pixels: int


class FlagDetail(Flag):
    conflicts: list[Conflict]
    observations: list[Observation]
    allowed_next: list[str]


class HistoryEntry(BaseModel):
    id: int
    at: str
    actor: str
    action: str
    detail: dict[str, Any]


class FlagPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status = Field(description="The new status; see allowed_next on the flag.")
    note: str | None = Field(None, max_length=4000)
    # the rectification ledger (redline.ledger): set on moves to verified_violation .. closed
    responsible: str | None = Field(None, max_length=400, description="Responsible unit.")
    person: str | None = Field(None, max_length=200, description="Responsible person.")
    measures: str | None = Field(None, max_length=4000, description="Rectification measures.")
    deadline: date | None = Field(None, description="Rectification deadline.")
    plan: str | None = Field(None, max_length=400, description="Rectification plan document reference.")
    override_reason: str | None = Field(
        None,
        max_length=4000,
        description=("Close a rectified flag without a 'recovered' verdict from new imagery: why."),
    )


class Evidence(BaseModel):
    id: int
    flag_id: int
    original_name: str | None
    content_type: str
    size: int
    sha256: str
    lon: float | None
    lat: float | None
    note: str | None
    actor: str
    at: str


class CheckZone(BaseModel):
    layer: str
    layer_version: int | None
    name: str
    regime: str
    code: str | None
    overlap: Area
    observed_fraction: float
    last_observed: str | None


class CheckScan(BaseModel):
    product_id: str
    sensor: str | None
    acquired_after: str
    observed_fraction: float


class CheckSummary(BaseModel):
    model_config = ConfigDict(extra="allow")
    region: Area
    zones_touched: int
    flags: int
    conflicts: int
    conflict_area: Area = Field(
        description="Ground of the listed conflicts inside the region (geodesic, overlaps "
        "counted once); never more than the region"
    )
    by_severity: dict[str, int]
    by_activity: dict[str, int]
    by_status: dict[str, int]
    scans: int
    observed_fraction: float
    last_observed: str | None


class CheckAnswer(BaseModel):
    period: dict[str, str | None]
    summary: CheckSummary
    zones: list[CheckZone]
    scans: list[CheckScan]
    flags: list[Flag]
    layer_versions: dict[str, int]


class ScreeningRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    footprint: dict[str, Any] = Field(description="GeoJSON geometry, Feature or FeatureCollection")
    activity: Activity
    crs: str | None = Field(None, description="CRS of the footprint; default CRS84 (EPSG:4490 accepted)")


class ScreeningZone(BaseModel):
    layer: str
    layer_version: int | None
    name: str
    regime: str
    code: str | None
    overlap_ha: float
    overlap_mu: float
    severity: str | None
    verdict: Literal["prohibited", "needs_approval", "clear"]
    rule: str | None


class NearestRedline(BaseModel):
    name: str
    code: str | None
    distance_m: float


class ScreeningAnswer(BaseModel):
    activity: str
    area_ha: float
    area_mu: float
    verdict: Literal["prohibited", "needs_approval", "clear"]
    zones: list[ScreeningZone]
    nearest_redline: NearestRedline | None
    rules_version: str
    layer_versions: dict[str, int]


class StatsRow(BaseModel):
    model_config = ConfigDict(extra="allow")
    count: int
    area_ha: float
    area_mu: float


class Stats(BaseModel):
    group_by: str
    groups: list[StatsRow]


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(description="Raster or product manifest, relative to the server's data folder")
    mode: Literal["class", "probability", "transition"] | None = None
    class_table: str | None = None
    transition_table: str | None = None
    before: str | None = None
    thresholds: list[float] | None = None
    activity: Activity | None = None
    product_id: str | None = Field(None, max_length=200)
    sensor: str | None = Field(None, max_length=200)
    acquired_before: date | None = None
    acquired_after: date | None = None


JobState = Literal["accepted", "running", "successful", "failed"]


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None


class Job(BaseModel):
    """A job as redline records it, with the members of OGC API – Processes' statusInfo."""

    id: str
    kind: str
    state: JobState
    progress: int
    message: str | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    created_at: str
    updated_at: str
    # OGC API - Processes statusInfo
    jobID: str
    processID: str
    type: Literal["process"] = "process"
    status: JobState
    created: str
    updated: str
    links: list[Link] = []


class JobList(BaseModel):
    jobs: list[Job]
    links: list[Link]


class ScanExecution(BaseModel):
    """OGC API – Processes execute request for the ``scan`` process (always asynchronous)."""

    model_config = ConfigDict(extra="forbid")
    inputs: ScanRequest
    outputs: dict[str, Any] | None = Field(None, description="Ignored: the one output is the scan summary")
    response: Literal["document"] | None = None
