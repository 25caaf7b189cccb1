"""Query parameters shared by flag listings, exports, statistics, the ledger and tiles."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from redline import cql
from redline.errors import CRSError
from redline.geo import parse_crs
from redline.store import FlagFilter

from .deps import CurrentUser
from .inputs import parse_bbox, parse_datetime_interval
from .params import BadParameterError
from .schemas import Activity, Severity, Status


def flag_filter(
    user: CurrentUser,
    status: Annotated[list[Status] | None, Query(description="Flag status (repeatable).")] = None,
    severity: Annotated[list[Severity] | None, Query(description="Severity (repeatable).")] = None,
    activity: Annotated[list[Activity] | None, Query(description="Activity type (repeatable).")] = None,
    admin: Annotated[list[str] | None, Query(description="Admin-unit code (repeatable).")] = None,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in CRS84.")] = None,
    datetime: Annotated[str | None, Query(description="RFC 3339 instant or interval (a/b, .. open).")] = None,
) -> FlagFilter:
    since, until = parse_datetime_interval(datetime)
    return user.scope(
        FlagFilter(
            bbox=parse_bbox(bbox),
            status=status,
            severity=severity,
            activity=activity,
            admin_code=admin,
            since=since,
            until=until,
        )
    )


FlagQuery = Annotated[FlagFilter, Depends(flag_filter)]


# the CQL2 filter's language and CRS (OGC API Features Part 3), the same wherever a filter is taken
FilterLang = Annotated[
    Literal["cql2-text", "cql2-json"] | None,
    Query(alias="filter-lang", description="cql2-text (default) or cql2-json."),
]
FilterCrs = Annotated[
    str | None, Query(alias="filter-crs", description="CRS of the filter's geometries (default CRS84).")
]


def parse_filter(collection: str, text: str | None, lang: str | None, crs: str | None):
    """The checked CQL2 filter (redline.cql.parse) of ``filter``, ``filter-lang`` and
    ``filter-crs`` (any CRS of the allowlist, default CRS84) over ``collection``'s queryables;
    None without a filter."""
    if text is None:
        if lang or crs:
            raise BadParameterError("filter-lang and filter-crs need a filter")
        return None
    try:
        geometry_crs = parse_crs(crs) if crs else None
    except CRSError as exc:
        raise BadParameterError(f"filter-crs: {exc}") from None
    return cql.parse(text, lang, collection, geometry_crs)
