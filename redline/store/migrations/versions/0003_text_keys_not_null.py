"""SQLite: the text primary keys (jobs.id, batch_ledger.key) NOT NULL, as declared.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

SQLite lets a non-integer PRIMARY KEY column hold NULL unless it says NOT NULL; the schema
(redline.store.schema) declares both keys NOT NULL, as PostgreSQL already has them. The two
tables are rebuilt (copy, drop, rename); nothing changes in PostGIS.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for table, key in (("jobs", "id"), ("batch_ledger", "key")):
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.alter_column(key, nullable=False)
