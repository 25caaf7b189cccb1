"""Nightly batch ledger: one entry per discovered product (running | done | failed).

Revision ID: 0002
Revises: 0001
Create Date: 2026-07-01

``IF NOT EXISTS`` on SQLite: stores created while the table was still added by the
unversioned schema script already have it.
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SQLITE = """
CREATE TABLE IF NOT EXISTS batch_ledger (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    item_id TEXT NOT NULL,
    location TEXT NOT NULL,
    stamp TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT,
    checksum TEXT,
    scan_id INTEGER REFERENCES scans(id),
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_id TEXT,
    reported_in TEXT,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_ledger_stamp ON batch_ledger(stamp);
CREATE INDEX IF NOT EXISTS batch_ledger_state ON batch_ledger(state, reported_in);
"""

POSTGIS = """
CREATE TABLE batch_ledger (
    key text PRIMARY KEY,
    source text NOT NULL,
    item_id text NOT NULL,
    location text NOT NULL,
    stamp text NOT NULL,
    state text NOT NULL,
    reason text,
    checksum text,
    scan_id bigint REFERENCES scans(id),
    result json,
    attempts integer NOT NULL DEFAULT 0,
    run_id text,
    reported_in text,
    first_seen_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX batch_ledger_stamp ON batch_ledger (stamp);
CREATE INDEX batch_ledger_state ON batch_ledger (state, reported_in);
"""


def upgrade() -> None:
    script = SQLITE if op.get_context().dialect.name == "sqlite" else POSTGIS
    for statement in script.split(";"):
        if statement.strip():
            op.execute(statement.strip())
