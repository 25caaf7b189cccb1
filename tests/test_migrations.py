"""Schema migrations (Alembic): one numbered history that builds both backends' schema,
upgrades installed stores in place, and refuses stores newer than this redline."""

from __future__ import annotations

import json
import re
import sqlite3
import warnings
from importlib import util

import psycopg
import pytest
import shapely
import sqlalchemy as sa
from typer.testing import CliRunner

from redline.cli import app
from redline.errors import StoreError
from redline.store import open_store, schema
from redline.store.migrations import HEAD, HERE, REVISIONS, current, upgrade
from redline.store.sqlite import SCHEMA_VERSION

from .test_store import FLAG


def _revision_module(rev: str):
    (path,) = (HERE / "versions").glob(f"{rev}_*.py")
    spec = util.spec_from_file_location(f"rev_{rev}", path)
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _sqlite_objects(db: sqlite3.Connection) -> dict:
    rows = db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name != 'alembic_version' AND sql IS NOT NULL"
    ).fetchall()
    return {(t, n): " ".join(sql.replace("IF NOT EXISTS ", "").split()) for t, n, sql in rows}


def _sqlite_tables(tmp_path) -> dict[str, list[str]]:
    """Tables (not R*Tree indexes) of a fresh SQLite store, with their columns in order."""
    open_store(f"sqlite:///{tmp_path / 'fresh.db'}").close()
    db = sqlite3.connect(tmp_path / "fresh.db")
    names = [
        n
        for (n,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND sql NOT LIKE 'CREATE VIRTUAL%' AND name NOT LIKE '%_rtree_%'"
        )
    ]
    return {n: [r[1] for r in db.execute(f"PRAGMA table_info({n})")] for n in names}


def _normal(text) -> str | None:
    """A type or default as text, without spaces, quotes, casts or case."""
    return None if text is None else re.sub(r"::[\w ]+|'|\s", "", str(text)).lower()


def _declared(dialect_name: str) -> dict:
    """What redline.store.schema declares for a backend: tables with their columns (name, type,
    NOT NULL, default, identity), keys, unique constraints, foreign keys and indexes."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = sqlite.dialect() if dialect_name == "sqlite" else postgresql.dialect()
    out = {}
    for t in schema.metadata.sorted_tables:
        if not schema.on(dialect_name, t):
            continue
        out[t.name] = {
            "columns": [
                (
                    c.name,
                    _normal(c.type.compile(dialect=dialect)),
                    not c.nullable,
                    _normal(getattr(c.server_default, "arg", None)),
                    c.identity is not None and dialect_name == "postgresql",
                )
                for c in t.columns
            ],
            "primary_key": [c.name for c in t.primary_key],
            "unique": sorted([c.name for c in u.columns] for u in t.constraints if isinstance(u, sa.UniqueConstraint)),
            "foreign_keys": sorted((fk.parent.name, fk.column.table.name, fk.column.name) for fk in t.foreign_keys),
            "indexes": sorted((i.name, [c.name for c in i.columns]) for i in t.indexes if schema.on(dialect_name, i)),
        }
    return out


def _built(url: str) -> dict:
    """The same, read back from the store at ``url`` (what `redline db upgrade` made)."""
    from redline.store.urls import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn, warnings.catch_warnings():
            warnings.simplefilter("ignore", sa.exc.SAWarning)  # geometry: read its type below
            insp = sa.inspect(conn)
            postgres = conn.dialect.name == "postgresql"
            pg_types = (
                dict(
                    ((t, c), f)
                    for t, c, f in conn.exec_driver_sql(
                        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
                        " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = 'public' AND a.attnum > 0"
                    )
                )
                if postgres
                else {}
            )
            out = {}
            for name in insp.get_table_names():
                if name in ("alembic_version", "spatial_ref_sys") or "_rtree" in name:
                    continue  # Alembic's, PostGIS's, SQLite's R*Tree index tables
                pk = insp.get_pk_constraint(name)["constrained_columns"]
                columns = []
                for c in insp.get_columns(name):
                    rowid = not postgres and pk == [c["name"]] and str(c["type"]) == "INTEGER"  # never NULL
                    columns.append(
                        (
                            c["name"],
                            _normal(pg_types[name, c["name"]] if postgres else c["type"]),
                            not c["nullable"] or rowid,
                            _normal(c.get("default")) if not c.get("identity") else None,
                            bool(c.get("identity")),
                        )
                    )
                out[name] = {
                    "columns": columns,
                    "primary_key": pk,
                    "unique": sorted(u["column_names"] for u in insp.get_unique_constraints(name)),
                    "foreign_keys": sorted(
                        (fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0])
                        for fk in insp.get_foreign_keys(name)
                    ),
                    "indexes": sorted(
                        (i["name"], i["column_names"])
                        for i in insp.get_indexes(name)
                        if not i.get("duplicates_constraint")
                    ),
                }
            return out
    finally:
        engine.dispose()


def test_sqlite_store_has_exactly_the_declared_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    open_store(url).close()
    assert _built(url) == _declared("sqlite")
    old = tmp_path / "old.db"  # a store from before migrations, upgraded
    db = sqlite3.connect(old)
    db.executescript(_revision_module("0001").SQLITE + "\nPRAGMA user_version = 1;")
    db.close()
    upgrade(f"sqlite:///{old}")
    assert _built(f"sqlite:///{old}") == _declared("sqlite")


def test_postgis_store_has_exactly_the_declared_schema(postgis):
    url = postgis.database(schema=False)
    upgrade(url)
    assert _built(url) == _declared("postgresql")


def cli(*args):
    result = CliRunner().invoke(app, list(map(str, args)))
    assert result.exit_code == 0, result.output
    return result.output


def test_revisions_are_one_numbered_line():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_heads() == [HEAD]
    assert REVISIONS == [f"{i:04d}" for i in range(1, len(REVISIONS) + 1)]
    for i, rev in enumerate(REVISIONS):
        assert script.get_revision(rev).down_revision == (REVISIONS[i - 1] if i else None)
    assert SCHEMA_VERSION == int(HEAD)


def test_an_upgraded_store_has_exactly_the_schema_of_a_fresh_one(tmp_path):
    """Revision by revision from v1, or all at once: the same tables, indexes and triggers."""
    open_store(f"sqlite:///{tmp_path / 'fresh.db'}").close()
    fresh = sqlite3.connect(tmp_path / "fresh.db")
    assert fresh.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert fresh.execute("SELECT version_num FROM alembic_version").fetchone()[0] == HEAD
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript(_revision_module("0001").SQLITE + "\nPRAGMA user_version = 1;")
    old.close()
    for rev in REVISIONS[1:]:
        upgrade(f"sqlite:///{tmp_path / 'old.db'}", rev)
    assert _sqlite_objects(sqlite3.connect(tmp_path / "old.db")) == _sqlite_objects(fresh)
    assert {"flags", "batch_ledger", "flags_rtree"} <= {n for _, n in _sqlite_objects(fresh)}


def test_store_from_before_migrations_upgrades_in_place(tmp_path):
    """A v1 file (created by the unversioned schema script) is recognised and upgraded when opened."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(_revision_module("0001").SQLITE + "\nPRAGMA user_version = 1;")
    db.execute("INSERT INTO tokens (name, role, token_hash, created_at) VALUES ('w', 'viewer', 'h', 'now')")
    db.commit()
    db.close()
    url = f"sqlite:///{path}"
    assert current(url) == "0001"
    s = open_store(url)
    try:
        assert s.token_by_hash("h")["name"] == "w"  # data kept
        entry = s.ledger_start({"key": "k", "source": "inbox", "item_id": "a", "location": "/x", "stamp": "s"})
        assert entry["state"] == "running"  # the table of revision 0002 is there
    finally:
        s.close()
    assert current(url) == HEAD


def test_sqlite_cli_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert json.loads(cli("--db", url, "db", "current", "--json"))["state"] == "empty"
    out = json.loads(cli("--db", url, "db", "upgrade", "--json"))
    assert (out["from"], out["to"]) == (None, HEAD)
    assert "nothing to do" in cli("--db", url, "db", "upgrade")


# PostGIS ---------------------------------------------------------------------------------


def _pg_columns(url: str) -> dict[str, list[str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " ORDER BY table_name, ordinal_position"
        ).fetchall()
    out: dict[str, list[str]] = {}
    for t, c in rows:
        out.setdefault(t, []).append(c)
    return out


def test_postgis_schema_mirrors_sqlite_with_spatial_types_and_indexes(postgis, tmp_path):
    url = postgis.database()
    pg = _pg_columns(url)
    for table, columns in _sqlite_tables(tmp_path).items():
        assert pg.get(table) == columns, f"{table}: PostGIS columns differ from SQLite's"
    with psycopg.connect(url) as conn:
        geoms = conn.execute(
            "SELECT f_table_name, f_geometry_column, srid, type FROM geometry_columns WHERE f_table_schema = 'public'"
        ).fetchall()
        gist = {
            (t, re.search(r"\((\w+)\)", d).group(1))
            for t, d in conn.execute(
                "SELECT tablename, indexdef FROM pg_indexes "
                "WHERE schemaname = 'public' AND indexdef LIKE '%USING gist%'"
            )
        }
        unique = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'scans' AND indexdef LIKE 'CREATE UNIQUE%(checksum)'"
        ).fetchall()
    assert {(t, c) for t, c, _, _ in geoms} == {
        ("zones", "geom"),
        ("zone_parts", "geom"),
        ("scans", "footprint"),
        ("flags", "geom"),
        ("observations", "geom"),
        ("leads", "geom"),
        ("zone_bands", "geom"),
    }
    assert {srid for _, _, srid, _ in geoms} == {4326}
    assert {("zones", "geom"), ("zone_parts", "geom"), ("scans", "footprint"), ("flags", "geom")} <= gist
    assert unique, "the scan ledger is UNIQUE on the content checksum"


def test_postgis_installed_store_upgrades_in_place(postgis):
    url = postgis.database(schema=False)  # postgis, nothing else
    assert current(url) is None
    assert upgrade(url, "0001") == (None, "0001")
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO tokens (name, role, token_hash, created_at) VALUES ('w', 'viewer', 'h', now())")
    with pytest.raises(StoreError, match=r"older than this redline.*redline db upgrade"):
        open_store(url)
    out = json.loads(cli("--db", url, "db", "upgrade", "--json"))
    assert (out["from"], out["to"]) == ("0001", HEAD)
    s = open_store(url)
    try:
        assert s.token_by_hash("h")["name"] == "w"
        assert (
            s.ledger_start({"key": "k", "source": "inbox", "item_id": "a", "location": "/x", "stamp": "s"})["attempts"]
            == 1
        )
    finally:
        s.close()
    assert json.loads(cli("--db", url, "db", "current", "--json"))["state"] == "up to date"


def test_postgis_empty_database_gets_the_schema_on_first_open(postgis):
    url = postgis.database(schema=False)
    s = open_store(url)
    try:
        fid = s.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
        assert s.flag(fid)["layer_versions"] == {"redline": 1}
    finally:
        s.close()
    assert current(url) == HEAD


def test_postgis_refuses_newer_schema_and_foreign_databases(postgis):
    url = postgis.database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="9999 is newer"):
        open_store(url)
    with pytest.raises(StoreError, match="newer"):
        upgrade(url)
    foreign = postgis.database(schema=False)
    with psycopg.connect(foreign, autocommit=True) as conn:
        conn.execute("CREATE TABLE flags (id int)")
    with pytest.raises(StoreError, match="not a redline store"):
        open_store(foreign)
    with pytest.raises(StoreError, match="cannot connect"):
        open_store(url.rsplit("/", 1)[0] + "/redline_no_such_database")
