"""Records defined once: the flag as the engine, the store, the API and the exports see it.

A field's Python type is what the store returns (dates and timestamps as ISO text, JSON
columns as Python objects); where the database holds a richer type the annotation says so
with :class:`Stored` (``date``, ``timestamp``, ``json``, ``bigint``). From this one
declaration come the flags table (``redline.store.schema``), ``FLAG_FIELDS`` (store rows,
export columns), the API's response model and the digest's keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict


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


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record: its name, the stored kind and whether it may be empty."""

    name: str
    kind: str  # int | bigint | float | str | date | timestamp | json
    nullable: bool
    brief: bool
    judged: bool


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
        stored = next((m.kind for m in meta if isinstance(m, Stored)), None)
        kind = stored or {int: "int", float: "float", str: "str"}[base]
        out.append(
            FieldSpec(
                name, kind, nullable, any(isinstance(m, Brief) for m in meta), any(isinstance(m, Judged) for m in meta)
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
