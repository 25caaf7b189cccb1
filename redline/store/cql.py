"""CQL2 filters (a pygeofilter AST checked by :func:`redline.cql.parse`) → SQLAlchemy Core
conditions over a table, written once for both backends. Literals are bound parameters
(never SQL text); the spatial test (S_INTERSECTS) is the backend's (``_intersects``);
LIKE is case-sensitive on both (CQL2's semantics: GLOB on SQLite, LIKE on PostgreSQL).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import shapely
import sqlalchemy as sa
from pygeofilter import ast
from sqlalchemy import bindparam

from ..cql import SORT_RANKS
from . import schema as S


def _literal(value):
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _glob(pattern: str) -> str:
    """A LIKE pattern (% _ and backslash escapes) as an SQLite GLOB pattern (case-sensitive)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(f"[{nxt}]" if nxt in "*?[" else nxt)
            i += 2
            continue
        out.append("*" if c == "%" else "?" if c == "_" else f"[{c}]" if c in "*?[" else c)
        i += 1
    return "".join(out)


class Compiler:
    """One filter → (condition, parameters) for ``table`` on ``store``'s backend."""

    def __init__(self, store, table: sa.Table, columns: dict | None = None):
        self.store, self.table, self.n = store, table, 0
        self.params: dict[str, Any] = {}
        self.columns = columns or {}

    def _bind(self, value, type_=None):
        self.n += 1
        name = f"cql_{self.n}"
        self.params[name] = _literal(value)
        return bindparam(name, type_=type_)

    def _column(self, node):
        name = node.name
        if name in self.columns:
            return self.columns[name]
        if name == "geometry":
            return self.table.c[S.GEOMETRY_COLUMN[self.table.name]]
        return self.table.c[name]

    def compile(self, node) -> tuple:
        return self.visit(node), self.params

    def visit(self, node):
        if isinstance(node, ast.And):
            return sa.and_(self.visit(node.lhs), self.visit(node.rhs))
        if isinstance(node, ast.Or):
            return sa.or_(self.visit(node.lhs), self.visit(node.rhs))
        if isinstance(node, ast.Not):
            return sa.not_(self.visit(node.sub_node))
        if isinstance(node, ast.Include):
            return sa.true()
        if isinstance(node, ast.GeometryIntersects):
            self.n += 1
            prefix = f"cql_geom_{self.n}"
            geom = shapely.geometry.shape(node.rhs.geometry)
            self.params.update(self.store._intersects_params(self.table, prefix, geom))
            return sa.and_(*self.store._intersects(self.table, prefix))
        col = self._column(node.lhs)
        if isinstance(node, ast.IsNull):
            return col.is_not(None) if node.not_ else col.is_(None)
        if isinstance(node, ast.Like):
            if self.store.dialect.name == "sqlite":
                cond = col.op("GLOB", return_type=sa.Boolean)(self._bind(_glob(node.pattern)))
            else:
                cond = col.like(self._bind(node.pattern), escape="\\")
            return sa.not_(cond) if node.not_ else cond
        if isinstance(node, ast.In):
            cond = col.in_([self._bind(v) for v in node.sub_nodes])
            return sa.not_(cond) if node.not_ else cond
        if isinstance(node, ast.Between):
            cond = col.between(self._bind(node.low), self._bind(node.high))
            return sa.not_(cond) if node.not_ else cond
        if isinstance(node, ast.TimeDuring):
            start, end = node.rhs.start, node.rhs.end
            conds = ([col >= self._bind(start)] if start is not None else []) + (
                [col <= self._bind(end)] if end is not None else []
            )
            return sa.and_(col.is_not(None), *conds)
        ops = {
            ast.Equal: "__eq__",
            ast.NotEqual: "__ne__",
            ast.LessThan: "__lt__",
            ast.LessEqual: "__le__",
            ast.GreaterThan: "__gt__",
            ast.GreaterEqual: "__ge__",
            ast.TimeAfter: "__gt__",
            ast.TimeBefore: "__lt__",
            ast.TimeEquals: "__eq__",
        }
        op = ops.get(type(node))
        if op is None:
            raise TypeError(f"unchecked filter node {type(node).__name__}")
        return getattr(col, op)(self._bind(node.rhs))


def order_by(table: sa.Table, sortby, binary: bool = False) -> list:
    """``sortby`` ((name, descending), ...) as ORDER BY terms, the id last (a total order);
    severity and confidence by rank, NULLs last either way; with ``binary``, text byte by byte
    on both backends (S.Binary)."""
    terms = []
    for name, desc in sortby or ():
        col = table.c[name]
        if name in SORT_RANKS:
            col = sa.case({v: i for i, v in enumerate(SORT_RANKS[name])}, value=col, else_=None)
        elif binary and isinstance(col.type, sa.Text):
            col = S.Binary(col)
        terms += [col.is_(None), col.desc() if desc else col.asc()]
    return [*terms, table.c.id]


__all__ = ["Compiler", "order_by"]
