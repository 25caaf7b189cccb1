"""Request and response models: the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from redline import vocab
from redline.model import CheckAnswer as CheckAnswer  # the engine's records, served as they are
from redline.model import FlagDetail as FlagDetail
from redline.model import HistoryEntry as HistoryEntry
from redline.model import ScreeningAnswer as ScreeningAnswer  # the engine's record, served as it is
from redline.vocab import ACTIVITY_WORDS, FLAG_STATUSES, SEVERITIES

# Store ids are SQLite/PostgreSQL 64-bit integers: refuse anything else at the edge.
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]

Status = Literal[FLAG_STATUSES]  # type: ignore[valid-type]
Severity = Literal[SEVERITIES]  # type: ignore[valid-type]
# an activity in any word the CLI takes (solar, 光伏, road, 道路...), canonical once validated
Activity = Annotated[
    str, AfterValidator(vocab.activity), WithJsonSchema({"type": "string", "enum": list(ACTIVITY_WORDS)})
]


class Health(BaseModel):
    status: str
    version: str


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
    taken_at: str | None = Field(None, description="When the photo was taken (EXIF), ISO 8601")
    position_source: str | None = Field(None, description="given (with the upload) or exif (the photo's GPS)")
    distance_m: float | None = Field(None, description="Geodesic distance from the position to the flag, metres")
    warning: str | None = Field(None, description="Taken far from the flag, or EXIF unreadable")


class ScreeningRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    footprint: dict[str, Any] = Field(description="GeoJSON geometry, Feature or FeatureCollection")
    activity: Activity
    crs: str | None = Field(None, description="CRS of the footprint; default CRS84 (EPSG:4490 accepted)")


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
