"""EXIF positions of evidence and delivery claims — issue 15.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

``deliveries.claimed_by`` / ``claimed_until``: a sender's lease on a pending delivery, so that
two senders (``redline notify`` and a nightly run, or two servers) never send one at once.
``evidence.taken_at`` / ``position_source`` / ``distance_m`` / ``warning``: a photo's EXIF time
and position, its distance from the flag and a warning when it was taken far from it.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TEXT = sa.Text()
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")
REAL: sa.types.TypeEngine[Any] = sa.Double().with_variant(sa.REAL(), "sqlite")


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("claimed_by", TEXT, nullable=True))
    op.add_column("deliveries", sa.Column("claimed_until", TIMESTAMP, nullable=True))
    op.add_column("evidence", sa.Column("taken_at", TIMESTAMP, nullable=True))
    op.add_column("evidence", sa.Column("position_source", TEXT, nullable=True))
    op.add_column("evidence", sa.Column("distance_m", REAL, nullable=True))
    op.add_column("evidence", sa.Column("warning", TEXT, nullable=True))
