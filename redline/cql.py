"""OGC API – Features Part 3: queryables, CQL2 filters (text and JSON) and sortby.

Filters are parsed by pygeofilter (no hand-written parser) into its AST, then checked here
against the collection's queryables: only known properties, only the operators the store
translates (comparison, IN, BETWEEN, LIKE, IS NULL, AND/OR/NOT, temporal comparisons on
dates, S_INTERSECTS with a literal geometry), literals of the property's type. The store
turns the checked AST into SQL (``redline.store.cql``), once for both backends; jurisdiction
is applied on top by the caller (``Principal.scope``), never through the filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import shapely
from pygeofilter import ast, values
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text

from .errors import RedlineError
from .model import FLAG_SPECS
from .vocab import (
    ACTIVITIES,
    CONFIDENCES,
    CONTROL,
    CONTROL_REGIMES,
    FLAG_STATUSES,
    LAYER_KINDS,
    RESERVE_REGIMES,
    SEVERITIES,
)

GEOMETRY = "geometry"
MAX_FILTER_CHARS = 20_000
MAX_NODES = 500


class FilterError(RedlineError, ValueError):
    """A filter or sortby that cannot be used: unparsable, an unknown property, an operator
    or a literal the property does not take (answered 400)."""


@dataclass(frozen=True)
class Queryable:
    name: str
    kind: str  # int | float | str | date | timestamp | geometry
    enum: tuple[str, ...] | None = None
    description: str | None = None

    def schema(self) -> dict:
        if self.kind == "geometry":
            return {
                "title": self.name,
                "description": self.description or "The feature's geometry",
                "x-ogc-role": "primary-geometry",
                "format": "geometry-multipolygon",
            }
        base = {
            "int": {"type": "integer"},
            "float": {"type": "number"},
            "str": {"type": "string"},
            "date": {"type": "string", "format": "date"},
            "timestamp": {"type": "string", "format": "date-time"},
        }[self.kind]
        out: dict[str, Any] = {"title": self.name, **base}
        if self.enum:
            out["enum"] = list(self.enum)
        if self.description:
            out["description"] = self.description
        if self.name == "id":
            out["x-ogc-role"] = "id"
        return out


_ENUMS = {
    "status": FLAG_STATUSES,
    "severity": SEVERITIES,
    "activity": ACTIVITIES,
    "confidence": CONFIDENCES,
    "zone_layer": LAYER_KINDS,
}
_FLAG_KINDS = {"bigint": "int", "int": "int", "float": "float", "str": "str", "date": "date", "timestamp": "timestamp"}
FLAG_QUERYABLES: dict[str, Queryable] = {
    s.name: Queryable(s.name, _FLAG_KINDS[s.kind], _ENUMS.get(s.name))
    for s in FLAG_SPECS
    if s.kind in _FLAG_KINDS and s.name != "permit_id"
}
FLAG_QUERYABLES[GEOMETRY] = Queryable(GEOMETRY, "geometry")
ZONE_QUERYABLES: dict[str, Queryable] = {
    q.name: q
    for q in (
        Queryable("id", "int"),
        Queryable("name", "str"),
        Queryable("regime", "str"),
        Queryable("code", "str"),
        Queryable("area_ha", "float"),
        Queryable("valid_from", "date"),
        Queryable("valid_to", "date"),
        Queryable(GEOMETRY, "geometry"),
    )
}
# severity sorts by rank (low < medium < high < critical), not alphabetically
SORT_RANKS = {"severity": SEVERITIES, "confidence": CONFIDENCES}


# the zone kinds whose regime is one of a closed list (loading normalises it: redline.vocab)
_REGIMES = {"reserve": RESERVE_REGIMES, CONTROL: CONTROL_REGIMES}


def queryables(collection: str) -> dict[str, Queryable]:
    if collection == "flags":
        return FLAG_QUERYABLES
    regimes = _REGIMES.get(collection)
    if regimes is None:
        return ZONE_QUERYABLES
    return {**ZONE_QUERYABLES, "regime": Queryable("regime", "str", regimes, "The zone's type")}


def json_schema(collection: str, url: str) -> dict:
    """The queryables as the JSON Schema document Part 3 asks for."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": url,
        "type": "object",
        "title": f"{collection} queryables",
        "additionalProperties": False,
        "properties": {n: q.schema() for n, q in queryables(collection).items()},
    }


def parse(text: str, lang: str | None, collection: str, geometry_crs=None) -> ast.Node:
    """A CQL2 filter (``cql2-text`` or ``cql2-json``) as a checked pygeofilter AST. Geometry
    literals are given in ``geometry_crs`` (default CRS84) and come back in lon/lat."""
    lang = (lang or "cql2-text").lower()
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"filter longer than {MAX_FILTER_CHARS} characters")
    try:
        if lang == "cql2-text":
            node = parse_cql2_text(text)
        elif lang == "cql2-json":
            node = parse_cql2_json(text)
        else:
            raise FilterError(f"filter-lang {lang!r}: expected cql2-text or cql2-json")
    except FilterError:
        raise
    except RecursionError:
        raise FilterError("filter nested too deeply") from None
    except Exception as exc:  # lark / json errors: the user's text is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FilterError(f"filter is not valid {lang}: {first}") from None
    return _Checker(queryables(collection), geometry_crs).check(node)


_COMPARISONS = (ast.Equal, ast.NotEqual, ast.LessThan, ast.LessEqual, ast.GreaterThan, ast.GreaterEqual)
_TEMPORAL = (ast.TimeAfter, ast.TimeBefore, ast.TimeEquals, ast.TimeDuring)


class _Checker:
    def __init__(self, fields: dict[str, Queryable], geometry_crs):
        self.fields, self.crs, self.nodes = fields, geometry_crs, 0

    def check(self, node):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(f"filter has more than {MAX_NODES} terms")
        if isinstance(node, (ast.And, ast.Or)):
            return type(node)(self.check(node.lhs), self.check(node.rhs))
        if isinstance(node, ast.Not):
            return ast.Not(self.check(node.sub_node))
        if isinstance(node, _COMPARISONS):
            q = self._attribute(node.lhs, node)
            return type(node)(node.lhs, self._literal(q, node.rhs))
        if isinstance(node, ast.In):
            q = self._attribute(node.lhs, node)
            return ast.In(node.lhs, [self._literal(q, v) for v in node.sub_nodes], node.not_)
        if isinstance(node, ast.Between):
            q = self._attribute(node.lhs, node)
            return ast.Between(node.lhs, self._literal(q, node.low), self._literal(q, node.high), node.not_)
        if isinstance(node, ast.Like):
            q = self._attribute(node.lhs, node)
            if q.kind != "str" or not isinstance(node.pattern, str):
                raise FilterError(f"LIKE needs a text property and a text pattern ({q.name} is {q.kind})")
            return node
        if isinstance(node, ast.IsNull):
            self._attribute(node.lhs, node)
            return node
        if isinstance(node, _TEMPORAL):
            q = self._attribute(node.lhs, node)
            if q.kind not in ("date", "timestamp"):
                raise FilterError(f"{type(node).__name__}: {q.name} is not a date")
            rhs = node.rhs
            if isinstance(node, ast.TimeDuring):
                if not isinstance(rhs, values.Interval):
                    raise FilterError("T_DURING needs an interval")
                return ast.TimeDuring(node.lhs, values.Interval(self._instant(q, rhs.start), self._instant(q, rhs.end)))
            return type(node)(node.lhs, self._instant(q, rhs))
        if isinstance(node, ast.GeometryIntersects):
            attr, geom = node.lhs, node.rhs
            if isinstance(attr, values.Geometry):
                attr, geom = geom, attr
            q = self._attribute(attr, node)
            if q.kind != "geometry" or not isinstance(geom, (values.Geometry, values.Envelope)):
                raise FilterError("S_INTERSECTS needs the geometry property and a geometry literal")
            return ast.GeometryIntersects(attr, values.Geometry(shapely.geometry.mapping(self._geometry(geom))))
        if isinstance(node, ast.Include):
            return node
        name = type(node).__name__
        raise FilterError(
            f"operator {name} is not supported here; use comparisons, IN, BETWEEN, LIKE, IS NULL, "
            "AND/OR/NOT, T_AFTER/T_BEFORE/T_EQUALS/T_DURING, S_INTERSECTS"
        )

    def _attribute(self, node, parent) -> Queryable:
        if not isinstance(node, ast.Attribute):
            raise FilterError(f"{type(parent).__name__}: the left side must be a property")
        q = self.fields.get(node.name)
        if q is None:
            raise FilterError(f"unknown property {node.name!r}; the queryables are: {', '.join(self.fields)}")
        return q

    def _literal(self, q: Queryable, value):
        if q.kind == "geometry":
            raise FilterError("compare the geometry with S_INTERSECTS")
        if isinstance(value, ast.Attribute) or isinstance(value, ast.Node):
            raise FilterError(f"{q.name}: compare with a literal value")
        if q.kind in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FilterError(f"{q.name} is a number: {value!r} is not")
            return value
        if q.kind == "str":
            if not isinstance(value, str):
                raise FilterError(f"{q.name} is text: quote {value!r}")
            return value
        return self._instant(q, value)

    def _instant(self, q: Queryable, value):
        """Dates compare as ISO text in the store: a date property against a date, a
        timestamp property against a UTC timestamp."""
        if isinstance(value, str):
            try:
                value = (
                    datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value)
                )
            except ValueError:
                raise FilterError(f"{q.name} is a date: {value!r} is not") from None
        if value is None:
            return None  # an open interval end
        if isinstance(value, datetime):
            return value.date() if q.kind == "date" else value
        if isinstance(value, date):
            return value
        raise FilterError(f"{q.name} is a date: {value!r} is not")

    def _geometry(self, geom):
        if isinstance(geom, values.Envelope):
            shape = shapely.box(geom.x1, geom.y1, geom.x2, geom.y2)
        else:
            try:
                shape = shapely.geometry.shape(geom.geometry)
            except Exception:
                raise FilterError("S_INTERSECTS: not a valid geometry") from None
        if self.crs is not None:  # in that CRS's axis order (EPSG:4490: latitude first)
            from .geo import reproject

            if self.crs.axis_info and self.crs.axis_info[0].direction.lower() == "north":
                shape = shapely.transform(shape, lambda xy: xy[:, ::-1])
            shape = reproject(shape, self.crs)
        if shape.is_empty or not shapely.is_valid(shape):
            shape = shapely.make_valid(shape)
        return shape


def parse_sortby(text: str | None, collection: str) -> tuple[tuple[str, bool], ...]:
    """``sortby=+a,-b`` → ((a, descending?), ...) over the collection's queryables."""
    if not text:
        return ()
    fields = queryables(collection)
    out = []
    for part in text.split(","):
        part = part.strip()
        desc = part.startswith("-")
        name = part.lstrip("+-").strip()
        if name not in fields or fields[name].kind == "geometry":
            raise FilterError(
                f"sortby: unknown property {name!r}; sortable: "
                f"{', '.join(n for n, q in fields.items() if q.kind != 'geometry')}"
            )
        out.append((name, desc))
    if len({n for n, _ in out}) != len(out):
        raise FilterError("sortby names a property twice")
    return tuple(out)


def describe(node: Any) -> str:
    """A stable text form of a checked filter (for cache keys and ETags)."""
    if node is None:
        return ""
    from pygeofilter.backends.cql2_json import to_cql2

    return to_cql2(node)
