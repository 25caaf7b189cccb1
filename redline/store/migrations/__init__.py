"""Schema migrations (Alembic) for both store backends.

One linear history: revision ``NNNN`` lives in ``versions/NNNN_*.py`` and upgrades
SQLite and PostGIS alike (each revision branches on the dialect where the DDL
differs). SQLite stores also mirror the revision number in ``PRAGMA user_version``
so that opening an up-to-date file costs one pragma and no SQLAlchemy import.

- ``upgrade(url)``: bring the store at ``url`` to ``head`` (``redline db upgrade``);
- ``current(url)``: its revision, None for an empty database;
- ``HEAD``: the newest revision this redline knows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..urls import conninfo, oneline, redact, sqlalchemy_url, sqlite_path

HERE = Path(__file__).resolve().parent
REVISIONS = sorted(p.name[:4] for p in (HERE / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))
HEAD = REVISIONS[-1]

# pg_advisory_xact_lock key held while a PostGIS store migrates ("rl-migr")
MIGRATION_LOCK = 0x726C2D6D69677200


def revision_number(revision: str | None) -> int:
    return int(revision) if revision else 0


def _config(connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["connection"] = connection
    return cfg


def _run(connection, target: str) -> None:
    from alembic import command

    command.upgrade(_config(connection), target)


def upgrade_sqlite(db: sqlite3.Connection, target: str = "head") -> None:
    """Upgrade the SQLite database behind ``db`` (an open connection in autocommit mode).

    All revisions run in one ``BEGIN IMMEDIATE`` transaction: a second process opening
    the same fresh file waits, then finds the schema there and does nothing.
    """
    import sqlalchemy as sa
    from sqlalchemy.pool import StaticPool

    engine = sa.create_engine("sqlite://", creator=lambda: db, poolclass=StaticPool)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):  # pysqlite's own BEGIN is deferred and skips DDL; take the write lock
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    with engine.begin() as conn:
        _run(conn, target)
    # the engine owns nothing to close: ``db`` stays the caller's


def upgrade_postgres(url: str, target: str = "head") -> None:
    """Upgrade the PostGIS database at ``url``: one transaction under an advisory lock."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with engine.begin() as conn:
            _run(conn, target)
    finally:
        engine.dispose()


def upgrade(url: str, target: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the store at ``url``; returns (revision before, revision after)."""
    from ...errors import StoreError

    before = current(url)
    if before is not None and before not in REVISIONS:
        raise StoreError(f"store schema {before} is newer than this redline ({HEAD})")
    if target != "head" and target not in REVISIONS:
        raise StoreError(f"unknown revision {target!r}; this redline knows {', '.join(REVISIONS)}")
    try:
        if url.startswith("sqlite"):
            db = _sqlite_connect(url)
            try:
                upgrade_sqlite(db, target)
            finally:
                db.close()
        else:
            upgrade_postgres(url, target)
    except Exception as exc:  # SQLAlchemy/driver errors: say what failed, in one line
        raise StoreError(f"schema upgrade failed: {oneline(getattr(exc, 'orig', None) or exc)}") from exc
    return before, current(url)


def _sqlite_connect(url: str) -> sqlite3.Connection:
    from ...errors import StoreError

    path = sqlite_path(url)
    if path != ":memory:" and not Path(path).parent.exists():
        raise StoreError(f"store folder {Path(path).parent} does not exist")
    return sqlite3.connect(path, isolation_level=None, timeout=60)


def current(url: str) -> str | None:
    """The revision the store at ``url`` is at (None: empty, never migrated)."""
    from ...errors import StoreError

    if url.startswith("sqlite"):
        db = _sqlite_connect(url)
        try:
            has = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone()
            if has:
                return db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            # a store made before migrations existed: schema v1 without the Alembic table
            version = db.execute("PRAGMA user_version").fetchone()[0]
            return None if version == 0 else REVISIONS[0] if version == 1 else f"{version:04d}"
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{url}: not a redline store ({exc})") from None
        finally:
            db.close()
    import psycopg

    try:
        with psycopg.connect(conninfo(url)) as conn:
            return postgres_revision(conn)
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the schema revision of {redact(url)}: {oneline(exc)}") from None


def postgres_revision(conn) -> str | None:
    """Revision of the database behind a psycopg connection (None when never migrated)."""
    from psycopg.rows import tuple_row

    cur = conn.cursor(row_factory=tuple_row)
    if cur.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
        return None
    row = cur.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None
