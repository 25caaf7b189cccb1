"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Name the file NNNN_<slug>.py with revision = "NNNN" (the next number): the store
finds its head by that number. Branch on the dialect where SQLite and PostGIS differ.
"""

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        ...
    else:
        ...
