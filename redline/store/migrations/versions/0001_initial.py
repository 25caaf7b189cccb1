"""Initial schema: layers, zones, scans, flags, observations, conflicts, audit, tokens, evidence, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-07-01

SQLite: the schema v1 that redline created before migrations existed (``IF NOT EXISTS``
throughout, so running it on such a store only records the revision). PostGIS: the same
tables and columns in the same order, with real types (date, timestamptz, json,
geometry(Geometry, 4326) with GiST indexes) and ``zone_parts``, the zones cut by
ST_Subdivide into pieces of at most 255 vertices, which spatial queries on big red-line
polygons use instead of the polygons themselves.
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SQLITE = """
CREATE TABLE IF NOT EXISTS layer_versions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    source TEXT NOT NULL,
    source_sha256 TEXT NOT NULL,
    source_crs TEXT,
    loaded_at TEXT NOT NULL,
    report TEXT NOT NULL,
    UNIQUE (kind, version)
);
CREATE TABLE IF NOT EXISTS zones (
    id INTEGER PRIMARY KEY,
    layer_version_id INTEGER NOT NULL REFERENCES layer_versions(id),
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    regime TEXT NOT NULL,
    code TEXT,
    attrs TEXT NOT NULL DEFAULT '{}',
    valid_from TEXT,
    valid_to TEXT,
    activity TEXT,
    area_ha REAL NOT NULL,
    geom BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS zones_version ON zones(layer_version_id);
CREATE VIRTUAL TABLE IF NOT EXISTS zones_rtree USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE IF NOT EXISTS scans (
    id INTEGER PRIMARY KEY,
    checksum TEXT NOT NULL UNIQUE,
    product_id TEXT NOT NULL,
    mode TEXT NOT NULL,
    sensor TEXT,
    acquired_before TEXT,
    acquired_after TEXT NOT NULL,
    files TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    state TEXT NOT NULL,
    stats TEXT NOT NULL,
    layer_versions TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    observed_fraction REAL,
    footprint BLOB
);
CREATE VIRTUAL TABLE IF NOT EXISTS scans_rtree USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE IF NOT EXISTS flags (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    severity TEXT,
    activity TEXT NOT NULL,
    confidence TEXT NOT NULL,
    score REAL,
    area_ha REAL NOT NULL,
    area_mu REAL NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    n_observations INTEGER NOT NULL,
    zone_layer TEXT,
    zone_name TEXT,
    zone_regime TEXT,
    admin_code TEXT,
    admin_name TEXT,
    permit_id INTEGER,
    layer_versions TEXT NOT NULL,
    rules_version TEXT NOT NULL,
    rule TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    geom BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS flags_status ON flags(status, severity);
CREATE VIRTUAL TABLE IF NOT EXISTS flags_rtree USING rtree(id, minx, maxx, miny, maxy);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY,
    flag_id INTEGER NOT NULL REFERENCES flags(id),
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    observed_on TEXT NOT NULL,
    activity TEXT NOT NULL,
    confidence TEXT NOT NULL,
    score REAL,
    area_ha REAL NOT NULL,
    pixels INTEGER NOT NULL,
    geom BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS observations_flag ON observations(flag_id);
CREATE TABLE IF NOT EXISTS conflicts (
    id INTEGER PRIMARY KEY,
    flag_id INTEGER NOT NULL REFERENCES flags(id),
    zone_id INTEGER NOT NULL REFERENCES zones(id),
    layer TEXT NOT NULL,
    layer_version INTEGER NOT NULL,
    zone_name TEXT NOT NULL,
    regime TEXT NOT NULL,
    overlap_ha REAL NOT NULL,
    overlap_mu REAL NOT NULL,
    severity TEXT,
    rule TEXT
);
CREATE INDEX IF NOT EXISTS conflicts_flag ON conflicts(flag_id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    flag_id INTEGER REFERENCES flags(id),
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_flag ON audit(flag_id);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    jurisdiction TEXT NOT NULL DEFAULT '[]',
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    flag_id INTEGER NOT NULL REFERENCES flags(id),
    stored_name TEXT NOT NULL,
    original_name TEXT,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    lon REAL,
    lat REAL,
    note TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_flag ON evidence(flag_id);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    request TEXT NOT NULL DEFAULT '{}',
    result TEXT,
    actor TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""

POSTGIS = """
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE layer_versions (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    version integer NOT NULL,
    source text NOT NULL,
    source_sha256 text NOT NULL,
    source_crs text,
    loaded_at timestamptz NOT NULL,
    report json NOT NULL,
    UNIQUE (kind, version)
);
CREATE TABLE zones (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    layer_version_id bigint NOT NULL REFERENCES layer_versions(id),
    kind text NOT NULL,
    name text NOT NULL,
    regime text NOT NULL,
    code text,
    attrs json NOT NULL DEFAULT '{}',
    valid_from date,
    valid_to date,
    activity text,
    area_ha double precision NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX zones_version ON zones (layer_version_id);
CREATE INDEX zones_geom ON zones USING gist (geom);
CREATE TABLE zone_parts (
    zone_id bigint NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX zone_parts_zone ON zone_parts (zone_id);
CREATE INDEX zone_parts_geom ON zone_parts USING gist (geom);
CREATE TABLE scans (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    checksum text NOT NULL UNIQUE,
    product_id text NOT NULL,
    mode text NOT NULL,
    sensor text,
    acquired_before date,
    acquired_after date NOT NULL,
    files json NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    state text NOT NULL,
    stats json NOT NULL,
    layer_versions json NOT NULL,
    rules_version text NOT NULL,
    observed_fraction double precision,
    footprint geometry(Geometry, 4326)
);
CREATE INDEX scans_footprint ON scans USING gist (footprint);
CREATE TABLE flags (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    status text NOT NULL,
    severity text,
    activity text NOT NULL,
    confidence text NOT NULL,
    score double precision,
    area_ha double precision NOT NULL,
    area_mu double precision NOT NULL,
    first_seen date NOT NULL,
    last_seen date NOT NULL,
    n_observations integer NOT NULL,
    zone_layer text,
    zone_name text,
    zone_regime text,
    admin_code text,
    admin_name text,
    permit_id bigint,
    layer_versions json NOT NULL,
    rules_version text NOT NULL,
    rule text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX flags_status ON flags (status, severity);
CREATE INDEX flags_geom ON flags USING gist (geom);
CREATE TABLE observations (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    flag_id bigint NOT NULL REFERENCES flags(id),
    scan_id bigint NOT NULL REFERENCES scans(id),
    observed_on date NOT NULL,
    activity text NOT NULL,
    confidence text NOT NULL,
    score double precision,
    area_ha double precision NOT NULL,
    pixels bigint NOT NULL,
    geom geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX observations_flag ON observations (flag_id);
CREATE TABLE conflicts (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    flag_id bigint NOT NULL REFERENCES flags(id),
    zone_id bigint NOT NULL REFERENCES zones(id),
    layer text NOT NULL,
    layer_version integer NOT NULL,
    zone_name text NOT NULL,
    regime text NOT NULL,
    overlap_ha double precision NOT NULL,
    overlap_mu double precision NOT NULL,
    severity text,
    rule text
);
CREATE INDEX conflicts_flag ON conflicts (flag_id);
CREATE TABLE audit (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    flag_id bigint REFERENCES flags(id),
    at timestamptz NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    detail json NOT NULL
);
CREATE INDEX audit_flag ON audit (flag_id);
CREATE TABLE tokens (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    jurisdiction json NOT NULL DEFAULT '[]',
    token_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE TABLE evidence (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    flag_id bigint NOT NULL REFERENCES flags(id),
    stored_name text NOT NULL,
    original_name text,
    content_type text NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL,
    lon double precision,
    lat double precision,
    note text,
    actor text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX evidence_flag ON evidence (flag_id);
CREATE TABLE jobs (
    id text PRIMARY KEY,
    kind text NOT NULL,
    state text NOT NULL,
    progress integer NOT NULL DEFAULT 0,
    message text,
    request json NOT NULL DEFAULT '{}',
    result json,
    actor text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
"""


def statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def upgrade() -> None:
    script = SQLITE if op.get_context().dialect.name == "sqlite" else POSTGIS
    for statement in statements(script):
        op.execute(statement)
