"""Alembic environment: runs on the connection that redline.store.migrations hands over.

SQLite: the caller has begun a ``BEGIN IMMEDIATE`` transaction; the reached revision is
mirrored in ``PRAGMA user_version``. PostgreSQL: the whole upgrade is one transaction
(DDL is transactional there) under an advisory lock, so concurrent upgrades serialise
and the second one finds nothing left to do.
"""

from alembic import context
from sqlalchemy import text

from redline.store.migrations import MIGRATION_LOCK, revision_number

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise SystemExit("run migrations through `redline db upgrade` (redline.store.migrations.upgrade)")

context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.run_migrations()
    if connection.dialect.name == "sqlite":
        reached = context.get_context().get_current_revision()
        connection.exec_driver_sql(f"PRAGMA user_version = {revision_number(reached)}")
