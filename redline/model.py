"""Records defined once: the flag as the engine, the store, the API and the exports see it.

A field's Python type is what the store returns (dates and timestamps as ISO text, JSON
columns as Python objects); where the database holds a richer type the annotation says so
with :class:`Stored` (``date``, ``timestamp``, ``json``, ``bigint``). From this one
declaration come the flags table (``redline.store.schema``), ``FLAG_FIELDS`` (store rows,
export columns), the API's response model and the digest's keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field

from .vocab import hectares_to_mu

if TYPE_CHECKING:
    import shapely


@dataclass(frozen=True)
class Stored:
    """How a field is held in the database when its Python type does not say it: ``date``
    (ISO date text), ``timestamp`` (ISO date-time in UTC), ``json``, ``bigint`` (an id)."""

    kind: str


@dataclass(frozen=True)
class Brief:
    """Marks a field that short listings (the nightly digest) show."""


@dataclass(frozen=True)
class Judged:
    """Marks a field that the protection layers and the rules decide (not the patch itself):
    what a re-check against new layer versions or rules may change."""


IsoDate = Annotated[str, Stored("date")]  # 'YYYY-MM-DD'
IsoTime = Annotated[str, Stored("timestamp")]  # '2026-06-20T08:00:00+00:00'


class Flag(BaseModel):
    # extra: detail views add conflicts, observations and the next allowed statuses
    model_config = ConfigDict(extra="allow")

    id: Annotated[int, Stored("bigint"), Brief()]
    status: Annotated[str, Brief()]
    severity: Annotated[str | None, Brief(), Judged()]
    activity: Annotated[str, Brief()]
    confidence: Annotated[str, Brief()]
    score: float | None = None
    area_ha: Annotated[float, Brief()]
    area_mu: Annotated[float, Brief()]
    first_seen: Annotated[IsoDate, Brief()]
    last_seen: Annotated[IsoDate, Brief()]
    n_observations: Annotated[int, Brief()]
    zone_layer: Annotated[str | None, Brief(), Judged()]
    zone_name: Annotated[str | None, Brief(), Judged()]
    zone_regime: Annotated[str | None, Brief(), Judged()]
    admin_code: Annotated[str | None, Brief(), Judged()]
    admin_name: Annotated[str | None, Brief(), Judged()]
    permit_id: Annotated[int | None, Stored("bigint"), Judged()]
    layer_versions: Annotated[dict[str, int], Stored("json"), Judged()]
    rules_version: Annotated[str, Judged()]
    rule: Annotated[str | None, Judged()]
    created_at: IsoTime
    updated_at: IsoTime
    # where the problem came from: our own scans, a lead of the national supervision platform,
    # a ground report (inspector, hotline); and that source's own reference (the national
    # lead's id, the ground report's id); none for scans (the observations name the scans)
    source: Annotated[str, Brief()] = "scan"
    source_ref: str | None = None


PROBLEM_SOURCES = ("scan", "national", "ground")


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record: its name, the stored kind and whether it may be empty."""

    name: str
    kind: str  # int | bigint | float | str | date | timestamp | json
    nullable: bool
    brief: bool
    judged: bool
    default: str | None = None  # a text default, also the column's server default


def fields_of(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """The fields of ``model`` in declaration order, with the kind the store holds them as."""
    out = []
    for name, hint in get_type_hints(model, include_extras=True).items():
        if name not in model.model_fields:
            continue
        meta: list = []
        while get_origin(hint) is Annotated:
            hint, *more = get_args(hint)
            meta += more
        args = get_args(hint)
        nullable = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if args and nullable else hint
        while get_origin(base) is Annotated:  # IsoDate | None
            base, *more = get_args(base)
            meta += more
        stored = next((m.kind for m in meta if isinstance(m, Stored)), None)
        kind = stored or {int: "int", float: "float", str: "str"}[base]
        out.append(
            FieldSpec(
                name,
                kind,
                nullable,
                any(isinstance(m, Brief) for m in meta),
                any(isinstance(m, Judged) for m in meta),
                default if isinstance(default := model.model_fields[name].default, str) else None,
            )
        )
    return tuple(out)


FLAG_SPECS = fields_of(Flag)
FLAG_FIELDS = tuple(f.name for f in FLAG_SPECS)
FLAG_BRIEF = tuple(f.name for f in FLAG_SPECS if f.brief)
FLAG_JUDGED = tuple(f.name for f in FLAG_SPECS if f.judged)


# The flag fields a vector tile carries (SQLite encoder and PostGIS ST_AsMVT alike).
FLAG_TILE_FIELDS = (
    "id",
    "severity",
    "status",
    "activity",
    "admin_code",
    "admin_name",
    "zone_name",
    "first_seen",
    "last_seen",
    "area_ha",
)


# --- The other records: zones, conflicts, observations, scans, history, the check ---------
# Store rows carry these fields (geometry aside, as a flag's); the API answers with these
# models; tests/test_store.py checks them against the tables and the rows of both stores.


@dataclass
class Zone:
    """One polygon of a protection layer with its regime, in lon/lat: what the layer readers
    make, the store keeps (``id``, ``layer_version_id`` set by it) and the overlay tests."""

    kind: str
    name: str
    regime: str
    geometry: shapely.Geometry
    code: str | None = None
    attrs: dict = field(default_factory=dict)
    valid_from: date | None = None
    valid_to: date | None = None
    activity: str | None = None
    id: int | None = None  # set by the store
    layer_version_id: int | None = None
    area_ha: float = 0.0

    def properties(self) -> dict[str, Any]:
        """The zone as a feature's properties (OGC API Features): its own fields, its layer
        and layer version, then the attributes the layer carried."""
        return {
            "name": self.name,
            "regime": self.regime,
            "code": self.code,
            "area_ha": self.area_ha,
            "layer": self.kind,
            "layer_version": self.attrs.get("layer_version"),
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            **{k: v for k, v in self.attrs.items() if k != "layer_version"},
        }


class Conflict(BaseModel):
    """A flag's patch inside one zone: the overlap and the severity the rules gave it."""

    id: Annotated[int, Stored("bigint")]
    flag_id: Annotated[int, Stored("bigint")]
    zone_id: Annotated[int, Stored("bigint")]
    layer: str
    layer_version: int
    zone_name: str
    regime: str
    overlap_ha: float
    overlap_mu: float
    severity: str | None
    rule: str | None


class Observation(BaseModel):
    """One sighting of a flag: by a scan (its product and sensor come from the scan), or by a
    problem from another ``source`` (a national lead, a ground report: no scan)."""

    id: Annotated[int, Stored("bigint")]
    flag_id: Annotated[int, Stored("bigint")]
    scan_id: Annotated[int | None, Stored("bigint")]
    product_id: str | None
    sensor: str | None
    observed_on: IsoDate
    activity: str
    confidence: str
    score: float | None
    area_ha: float
    pixels: Annotated[int, Stored("bigint")]
    source: str = "scan"
    source_ref: str | None = None


class Scan(BaseModel):
    """One processed change product (identity: the checksum of its files)."""

    id: Annotated[int, Stored("bigint")]
    checksum: str
    product_id: str
    mode: str
    sensor: str | None
    acquired_before: IsoDate | None
    acquired_after: IsoDate
    files: Annotated[list[str], Stored("json")]
    started_at: IsoTime
    finished_at: IsoTime
    state: str
    stats: Annotated[dict[str, Any], Stored("json")]
    layer_versions: Annotated[dict[str, int], Stored("json")]
    rules_version: str
    observed_fraction: float | None


class HistoryEntry(BaseModel):
    """One line of a flag's audit trail: who did what, when, with the details."""

    id: Annotated[int, Stored("bigint")]
    flag_id: Annotated[int | None, Stored("bigint")]
    at: IsoTime
    actor: str
    action: str
    detail: Annotated[dict[str, Any], Stored("json")]


class FlagDetail(Flag):
    """A flag as people read it (redline.workflow.flag_detail): conflicts by zone,
    observations over time and the statuses it may move to next."""

    conflicts: list[Conflict]
    observations: list[Observation]
    allowed_next: list[str]


CONFLICT_FIELDS = tuple(Conflict.model_fields)
OBSERVATION_FIELDS = tuple(Observation.model_fields)
SCAN_FIELDS = tuple(Scan.model_fields)
HISTORY_FIELDS = tuple(HistoryEntry.model_fields)


class Area(BaseModel):
    """A ground area, geodesic: hectares and mu (1 mu = 666.667 m²)."""

    ha: float
    mu: float

    @classmethod
    def of(cls, ha: float) -> Area:
        return cls(ha=round(ha, 4), mu=round(hectares_to_mu(ha), 2))


class PolygonalGeometry(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in longitude/latitude (RFC 7946)."""

    type: Literal["Polygon", "MultiPolygon"]
    coordinates: list[Any]


class Period(BaseModel):
    since: IsoDate | None
    until: IsoDate | None


class CheckZone(BaseModel):
    """A zone the checked region touches: the overlap and how much of it imagery saw."""

    layer: str
    layer_version: int | None
    name: str
    regime: str
    code: str | None
    overlap: Area
    observed_fraction: float
    last_observed: IsoDate | None


class CheckScan(BaseModel):
    """A scan whose footprint meets the region, and the share of the region it saw."""

    product_id: str
    sensor: str | None
    acquired_after: IsoDate
    observed_fraction: float


class CheckSummary(BaseModel):
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
    last_observed: IsoDate | None


class CheckAnswer(BaseModel):
    """What a check over a region found (redline.check.check_region)."""

    period: Period
    summary: CheckSummary
    zones: list[CheckZone]
    scans: list[CheckScan]
    flags: list[Flag]
    layer_versions: dict[str, int]
    not_observed: PolygonalGeometry | None = Field(
        description="The part of the region that no scan footprint of the period observed, "
        "simplified (lon/lat); null when imagery saw all of it"
    )
    region: PolygonalGeometry | None = Field(
        None, description="The region checked, as read (lon/lat), simplified for drawing on a map"
    )


# --- Screening of a proposed project footprint (redline.screening) ----------------------

Verdict = Literal["prohibited", "needs_approval", "clear"]  # strictest first (redline.rules.VERDICTS)


class AccessCitation(BaseModel):
    """The access list (生态环境准入清单) entry behind a control unit's verdict."""

    unit_code: str
    list_version: int
    row: int  # the entry's row in the loaded table (a spreadsheet's row number)
    activity: str  # canonical, or "*" for every activity
    activity_text: str | None  # the list's own words
    decision: Literal["prohibited", "restricted", "allowed"]
    condition: str | None


class ScreeningZone(BaseModel):
    """One zone or control unit the footprint touches, with the verdict and what it rests on."""

    layer: str  # redline | reserve | control
    layer_version: int | None
    name: str
    regime: str
    code: str | None
    overlap_ha: float
    overlap_mu: float
    overlap_geometry: dict[str, Any]  # GeoJSON, lon/lat
    severity: str | None  # from the rules (protection zones); None for control units
    verdict: Verdict
    rule: str | None  # the rule (rules.toml) or the access list entry ("access list v2 row 5")
    condition: str | None = None  # what an approval depends on (needs_approval)
    entry: AccessCitation | None = None  # control units: the access list entry, if one applies


class NearestZone(BaseModel):
    """The nearest zone of a layer and its geodesic distance (0 when the footprint touches it)."""

    layer: str
    name: str
    regime: str
    code: str | None
    distance_m: float


class ProximityEntry(BaseModel):
    """A zone within the outermost ring, with the innermost ring (km) that holds it."""

    layer: str
    name: str
    regime: str
    code: str | None
    distance_m: float
    ring_km: float


class ProximityRing(BaseModel):
    """How many zones of each layer lie within ``km`` of the footprint (inner rings included)."""

    km: float
    counts: dict[str, int]


class ScreeningAnswer(BaseModel):
    activity: str
    area_ha: float
    area_mu: float
    verdict: Verdict
    zones: list[ScreeningZone]  # red lines and reserve zones touched
    control_units: list[ScreeningZone]  # environmental control units touched
    nearest_redline: NearestZone | None
    nearest_reserve: NearestZone | None
    rings_km: list[float]
    rings: list[ProximityRing]
    proximity: list[ProximityEntry]  # nearest first
    rules_version: str
    access_list_version: int | None
    layer_versions: dict[str, int]
