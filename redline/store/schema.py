"""The store's tables, declared once (SQLAlchemy Core) for both backends.

Each column has one declaration; the type says how each dialect holds it: SQLite keeps
TEXT (ISO dates, timestamps and JSON text), REAL, INTEGER and WKB BLOBs; PostGIS has
``date``, ``timestamptz``, ``json`` (not jsonb: key order is kept), ``double precision``,
``bigint`` identities and ``geometry(Geometry, 4326)``. The flag's columns come from
:class:`redline.model.Flag`.

What is not a plain table lives with its backend: SQLite's R*Tree virtual tables
(``zones_rtree``, ``scans_rtree``, ``flags_rtree``) and PostGIS's GiST indexes and
``zone_parts`` (zones cut by ST_Subdivide; declared here with ``info={"dialects": ...}``).
The migrations build exactly this (tests/test_migrations.py compares them).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import UserDefinedType

from ..model import FLAG_SPECS

SRID = 4326


class Geometry(UserDefinedType):
    """A lon/lat geometry: ``geometry(Geometry, 4326)`` in PostGIS, a WKB BLOB in SQLite.
    Values are bound as WKB bytes either way (PostGIS wraps them in ST_GeomFromWKB)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return f"geometry(Geometry, {SRID})"

    def bind_expression(self, bindvalue):
        return FromWKB(bindvalue, self)


@compiles(Geometry, "sqlite")
def _geometry_sqlite(element, compiler, **kw):
    return "BLOB"


class PerDialect(ColumnElement):
    """An expression of one argument written per dialect: ``templates[dialect]`` (else
    ``templates["default"]``, PostgreSQL's) with ``{}`` standing for the argument."""

    inherit_cache = True
    templates: dict[str, str] = {}

    def __init__(self, expr, type_=None):
        self.expr = expr
        self.type = type_ if type_ is not None else expr.type


@compiles(PerDialect)
def _per_dialect(element, compiler, **kw):
    template = element.templates.get(compiler.dialect.name, element.templates["default"])
    return template.format(compiler.process(element.expr, **kw))


class FromWKB(PerDialect):
    """A WKB value as a geometry: the bytes themselves in SQLite, ST_GeomFromWKB in PostGIS."""

    templates = {"default": f"ST_GeomFromWKB({{}}, {SRID})", "sqlite": "{}"}


class Binary(PerDialect):
    """Text compared byte by byte (SQLite's default; ``COLLATE "C"`` in PostgreSQL), so both
    stores order names alike."""

    templates = {"default": '{} COLLATE "C"', "sqlite": "{}"}


class YearMonth(PerDialect):
    """'YYYY-MM' of a date column (ISO text in SQLite, a ``date`` in PostgreSQL)."""

    templates = {"default": "to_char({}, 'YYYY-MM')", "sqlite": "substr({}, 1, 7)"}


# column types: one name per kind of value, each dialect's own type underneath
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # a row id, or a reference to one
INT = sa.Integer()
TEXT = sa.Text()
REAL: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
DATE = sa.Date().with_variant(sa.Text(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
JSON = sa.JSON().with_variant(sa.Text(), "sqlite")
GEOMETRY = Geometry()
TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "int": INT,
    "bigint": ID,
    "float": REAL,
    "str": TEXT,
    "date": DATE,
    "timestamp": TIMESTAMP,
    "json": JSON,
}

metadata = sa.MetaData()


def _id() -> sa.Column:
    return sa.Column("id", ID, sa.Identity(), primary_key=True)


def _ref(name: str, target: str, nullable: bool = False, **kw) -> sa.Column:
    return sa.Column(name, ID, sa.ForeignKey(target, **kw), nullable=nullable)


def col(name: str, type_, nullable: bool = True, **kw) -> sa.Column:
    return sa.Column(name, type_, nullable=nullable, **kw)


def req(name: str, type_, **kw) -> sa.Column:
    """A column that may not be empty."""
    return sa.Column(name, type_, nullable=False, **kw)


layer_versions = sa.Table(
    "layer_versions",
    metadata,
    _id(),
    req("kind", TEXT),
    req("version", INT),
    req("source", TEXT),
    req("source_sha256", TEXT),
    col("source_crs", TEXT),
    req("loaded_at", TIMESTAMP),
    req("report", JSON),
    sa.UniqueConstraint("kind", "version"),
)

zones = sa.Table(
    "zones",
    metadata,
    _id(),
    _ref("layer_version_id", "layer_versions.id"),
    req("kind", TEXT),
    req("name", TEXT),
    req("regime", TEXT),
    col("code", TEXT),
    req("attrs", JSON, server_default="{}"),
    col("valid_from", DATE),
    col("valid_to", DATE),
    col("activity", TEXT),
    req("area_ha", REAL),
    req("geom", GEOMETRY),
    sa.Index("zones_version", "layer_version_id"),
)

# access lists (生态环境准入清单) of environmental control units: one row per list entry, keyed by
# unit code, in a layer version of kind "access_list" (the control units are zones of kind "control")
access_entries = sa.Table(
    "access_entries",
    metadata,
    _id(),
    _ref("layer_version_id", "layer_versions.id"),
    req("unit_code", TEXT),
    req("activity", TEXT),  # a canonical activity, or "*" for every activity
    col("activity_text", TEXT),  # the list's own words
    req("decision", TEXT),  # prohibited | restricted | allowed
    col("condition", TEXT),
    req("source_row", INT),  # the entry's row in the source table (a spreadsheet's row number)
    sa.Index("access_entries_unit", "layer_version_id", "unit_code"),
)

# PostGIS only: the zones cut into pieces of at most 255 vertices, for spatial queries
zone_parts = sa.Table(
    "zone_parts",
    metadata,
    _ref("zone_id", "zones.id", ondelete="CASCADE"),
    req("geom", GEOMETRY),
    sa.Index("zone_parts_zone", "zone_id"),
    info={"dialects": ("postgresql",)},
)

# zones generalised for zoomed-out vector tiles: one simplified copy per zoom band
# (redline.store.core.ZONE_BANDS), written with the layer version; none for a zone under a
# screen pixel at the band's zooms
zone_bands = sa.Table(
    "zone_bands",
    metadata,
    _ref("zone_id", "zones.id", ondelete="CASCADE"),
    req("band", INT),
    req("geom", GEOMETRY),
    sa.PrimaryKeyConstraint("zone_id", "band"),
)

# zoomed-out zone tiles (MVT) rendered once per layer version (redline.tiles.prerender_zone_tiles),
# the non-empty ones: a cache, served only once its set row below says it is complete
zone_tiles = sa.Table(
    "zone_tiles",
    metadata,
    _ref("layer_version_id", "layer_versions.id", ondelete="CASCADE"),
    req("z", INT),
    req("x", INT),
    req("y", INT),
    req("body", sa.LargeBinary()),
    sa.PrimaryKeyConstraint("layer_version_id", "z", "x", "y"),
)

# a layer version whose zone tiles up to ``max_zoom`` are all written (a missing one is empty),
# by the tile rules ``rules`` (redline.tiles.ZONE_TILE_RULES)
zone_tile_sets = sa.Table(
    "zone_tile_sets",
    metadata,
    sa.Column("layer_version_id", ID, sa.ForeignKey("layer_versions.id", ondelete="CASCADE"), primary_key=True),
    req("max_zoom", INT),
    req("rules", INT),
    req("tiles", INT),
    req("written_at", TIMESTAMP),
)

scans = sa.Table(
    "scans",
    metadata,
    _id(),
    req("checksum", TEXT, unique=True),
    req("product_id", TEXT),
    req("mode", TEXT),
    col("sensor", TEXT),
    col("acquired_before", DATE),
    req("acquired_after", DATE),
    req("files", JSON),
    req("started_at", TIMESTAMP),
    req("finished_at", TIMESTAMP),
    req("state", TEXT),
    req("stats", JSON),
    req("layer_versions", JSON),
    req("rules_version", TEXT),
    col("observed_fraction", REAL),
    col("footprint", GEOMETRY),
)

# the flag's fields added after the table was first made (migration 0006) follow its geometry
_FLAG_ADDED = ("source", "source_ref")


def _flag_columns(added: bool) -> list[sa.Column]:
    return [
        sa.Column(f.name, TYPES[f.kind], nullable=f.nullable, server_default=f.default)
        for f in FLAG_SPECS
        if f.name != "id" and (f.name in _FLAG_ADDED) == added
    ]


flags = sa.Table(
    "flags",
    metadata,
    _id(),
    *_flag_columns(added=False),
    req("geom", GEOMETRY),
    *_flag_columns(added=True),
    sa.Index("flags_status", "status", "severity"),
    # the filters people use most; a count of matches reads these (migration 0011)
    sa.Index("flags_severity", "severity"),
    sa.Index("flags_activity", "activity", "severity"),
    sa.Index("flags_last_seen", "last_seen"),
    sa.Index("flags_admin", "admin_code"),
)

# One observation per sighting of a flag: by a scan (``scan_id``), or by a problem from another
# source (``source`` national | ground, ``source_ref`` the lead's or the report's id), which
# has no scan. One table rather than one per source: a flag's observations over time are one
# list whatever saw it, and the matching, counting and history code reads them all alike.
observations = sa.Table(
    "observations",
    metadata,
    _id(),
    _ref("flag_id", "flags.id"),
    _ref("scan_id", "scans.id", nullable=True),
    req("observed_on", DATE),
    req("activity", TEXT),
    req("confidence", TEXT),
    col("score", REAL),
    req("area_ha", REAL),
    req("pixels", ID),
    req("geom", GEOMETRY),
    req("source", TEXT, server_default="scan"),
    col("source_ref", TEXT),
    sa.Index("observations_flag", "flag_id"),
)

conflicts = sa.Table(
    "conflicts",
    metadata,
    _id(),
    _ref("flag_id", "flags.id"),
    _ref("zone_id", "zones.id"),
    req("layer", TEXT),
    req("layer_version", INT),
    req("zone_name", TEXT),
    req("regime", TEXT),
    req("overlap_ha", REAL),
    req("overlap_mu", REAL),
    col("severity", TEXT),
    col("rule", TEXT),
    sa.Index("conflicts_flag", "flag_id"),
)

audit = sa.Table(
    "audit",
    metadata,
    _id(),
    _ref("flag_id", "flags.id", nullable=True),
    req("at", TIMESTAMP),
    req("actor", TEXT),
    req("action", TEXT),
    req("detail", JSON),
    sa.Index("audit_flag", "flag_id"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    _id(),
    req("name", TEXT),
    req("role", TEXT),
    req("jurisdiction", JSON, server_default="[]"),
    req("token_hash", TEXT, unique=True),
    req("created_at", TIMESTAMP),
    col("revoked_at", TIMESTAMP),
)

evidence = sa.Table(
    "evidence",
    metadata,
    _id(),
    _ref("flag_id", "flags.id"),
    req("stored_name", TEXT),
    col("original_name", TEXT),
    req("content_type", TEXT),
    req("size", ID),
    req("sha256", TEXT),
    col("lon", REAL),
    col("lat", REAL),
    col("note", TEXT),
    req("actor", TEXT),
    req("at", TIMESTAMP),
    # from a photo's EXIF (redline.evidence): when it was taken, how far from the flag, and a
    # warning when too far (or when the given point and the EXIF position disagree)
    col("taken_at", TIMESTAMP),
    col("position_source", TEXT),
    col("distance_m", REAL),
    col("warning", TEXT),
    sa.Index("evidence_flag", "flag_id"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    req("id", TEXT, primary_key=True),
    req("kind", TEXT),
    req("state", TEXT),
    req("progress", INT, server_default="0"),
    col("message", TEXT),
    req("request", JSON, server_default="{}"),
    col("result", JSON),
    col("actor", TEXT),
    req("created_at", TIMESTAMP),
    req("updated_at", TIMESTAMP),
)

batch_ledger = sa.Table(
    "batch_ledger",
    metadata,
    req("key", TEXT, primary_key=True),
    req("source", TEXT),
    req("item_id", TEXT),
    req("location", TEXT),
    req("stamp", TEXT),
    req("state", TEXT),
    col("reason", TEXT),
    col("checksum", TEXT),
    _ref("scan_id", "scans.id", nullable=True),
    col("result", JSON),
    req("attempts", INT, server_default="0"),
    col("run_id", TEXT),
    col("reported_in", TEXT),
    req("first_seen_at", TIMESTAMP),
    req("updated_at", TIMESTAMP),
    sa.Index("batch_ledger_stamp", "stamp"),
    sa.Index("batch_ledger_state", "state", "reported_in"),
)

# the rectification ledger (台账): one entry per verified violation, with its dated progress notes
rectifications = sa.Table(
    "rectifications",
    metadata,
    _id(),
    sa.Column("flag_id", ID, sa.ForeignKey("flags.id"), nullable=False, unique=True),
    col("responsible_unit", TEXT),
    col("responsible_person", TEXT),
    col("measures", TEXT),
    col("deadline", DATE),
    col("plan_ref", TEXT),
    col("verified_on", DATE),
    col("override_reason", TEXT),
    col("approved_by", TEXT),
    col("approved_at", TIMESTAMP),
    col("closed_on", DATE),
    req("created_at", TIMESTAMP),
    req("updated_at", TIMESTAMP),
)

rectification_notes = sa.Table(
    "rectification_notes",
    metadata,
    _id(),
    _ref("flag_id", "flags.id"),
    req("noted_on", DATE),
    req("note", TEXT),
    req("actor", TEXT),
    req("at", TIMESTAMP),
    sa.Index("rectification_notes_flag", "flag_id"),
)

# national leads (redline.leads): each issued lead as it came (batch, its own id, its original
# columns, the file's format and CRS) and the flag it became or observed; batch + lead id is
# the import's idempotency key, and what the verification results are written back with
leads = sa.Table(
    "leads",
    metadata,
    _id(),
    req("batch", TEXT),
    req("lead_id", TEXT),
    _ref("flag_id", "flags.id"),
    req("source_name", TEXT),
    req("source_format", TEXT),
    col("source_crs", TEXT),
    req("attrs", JSON),
    req("imported_at", TIMESTAMP),
    req("geom", GEOMETRY),
    sa.UniqueConstraint("batch", "lead_id"),
    sa.Index("leads_flag", "flag_id"),
)

# area subscriptions (redline.notify): an area (admin codes and/or a GeoJSON polygon in lon/lat),
# filters, a channel (webhook URL + secret, or an e-mail address) and the owner whose jurisdiction
# bounds what it may carry; removed ones are kept (their deliveries refer to them)
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    _id(),
    req("name", TEXT),
    req("owner_name", TEXT),
    req("owner_role", TEXT),
    req("owner_jurisdiction", JSON, server_default="[]"),
    req("admin_codes", JSON, server_default="[]"),
    col("region", JSON),
    col("min_severity", TEXT),
    req("activities", JSON, server_default="[]"),
    req("kinds", JSON),
    req("channel", TEXT),
    req("target", TEXT),
    col("secret", TEXT),
    req("created_at", TIMESTAMP),
    col("removed_at", TIMESTAMP),
    sa.Index("subscriptions_name", "name"),
)

# one delivery per subscription per nightly run with something new; written (pending) before it
# is sent, marked sent after: ``key`` (subscription + run) makes a re-run send nothing again
deliveries = sa.Table(
    "deliveries",
    metadata,
    _id(),
    _ref("subscription_id", "subscriptions.id"),
    req("run_id", TEXT),
    req("key", TEXT, unique=True),
    req("state", TEXT),
    req("attempts", INT, server_default="0"),
    col("last_error", TEXT),
    req("flags", INT),
    req("payload", JSON),
    req("payload_sha256", TEXT),
    req("created_at", TIMESTAMP),
    req("updated_at", TIMESTAMP),
    col("sent_at", TIMESTAMP),
    # a sender's claim (lease) on a pending row, so that two senders never send it at once;
    # a lease past ``claimed_until`` (its sender died) is taken over (redline.notify)
    col("claimed_by", TEXT),
    col("claimed_until", TIMESTAMP),
    sa.Index("deliveries_run", "run_id"),
    sa.Index("deliveries_state", "state"),
)

# PostGIS's spatial indexes (SQLite has R*Tree tables instead; see sqlite.py)
for _table, _column in (("zones", "geom"), ("zone_parts", "geom"), ("scans", "footprint"), ("flags", "geom")):
    sa.Index(
        f"{_table}_{_column}",
        metadata.tables[_table].c[_column],
        postgresql_using="gist",
        info={"dialects": ("postgresql",)},
    )

# the geometry column of each table that has one
GEOMETRY_COLUMN = {
    t.name: c.name
    for t in metadata.tables.values()
    for c in t.columns
    if isinstance(c.type, Geometry) and t.name != "zone_parts"
}
# JSON columns, decoded when read and encoded when written
JSON_COLUMNS = {
    t.name: frozenset(c.name for c in t.columns if isinstance(c.type, sa.JSON)) for t in metadata.tables.values()
}


def on(dialect: str, item) -> bool:
    """Whether a store of ``dialect`` ('sqlite' or 'postgresql') has this table or index."""
    return dialect in item.info.get("dialects", (dialect,))
