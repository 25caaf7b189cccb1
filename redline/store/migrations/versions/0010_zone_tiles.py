"""Zoomed-out zone tiles pre-rendered per layer version — issue 11: zone_tiles (the non-empty
tiles) and zone_tile_sets (a layer version whose tiles are all there).

The layer versions already loaded get none here (rendering needs the engine, not a migration):
their tiles are rendered per request as before, until the next load of the kind or
redline.tiles.prerender_zone_tiles.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def _layer_version(**kw) -> sa.Column:
    return sa.Column("layer_version_id", ID, sa.ForeignKey("layer_versions.id", ondelete="CASCADE"), **kw)


def upgrade() -> None:
    op.create_table(
        "zone_tiles",
        _layer_version(nullable=False),
        sa.Column("z", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("layer_version_id", "z", "x", "y"),
    )
    op.create_table(
        "zone_tile_sets",
        _layer_version(primary_key=True),
        sa.Column("max_zoom", sa.Integer(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.Column("tiles", sa.Integer(), nullable=False),
        sa.Column("written_at", TIMESTAMP, nullable=False),
    )
