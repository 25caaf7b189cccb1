"""Throw-away PostGIS databases for the tests.

The server is ``REDLINE_TEST_POSTGRES_URL`` (default: the local socket as the current
user, which must be allowed to create databases). Per session one template database is
made (from ``redline_test_template``, which scripts/provision_postgis.sh creates with the
postgis extension, else from template1 + CREATE EXTENSION) and migrated to head; every
test database is a copy of it (``CREATE DATABASE ... TEMPLATE``, ~0.1 s) and is dropped
afterwards.

Where no server or no PostGIS can be had the PostGIS tests are skipped, unless
``REDLINE_REQUIRE_POSTGIS=1`` or ``CI=true`` (scripts/test.sh sets the former): then they fail.
"""

from __future__ import annotations

import os
import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get("REDLINE_TEST_POSTGRES_URL", "postgresql:///postgres")
PROVISIONED_TEMPLATE = "redline_test_template"


def required() -> bool:
    return (
        os.environ.get("REDLINE_REQUIRE_POSTGIS", "").lower() in ("1", "true", "yes")
        or os.environ.get("CI", "").lower() == "true"
    )


def unavailable(reason: str):
    """Skip, or fail where PostGIS is required."""
    message = f"PostGIS unavailable: {reason} (scripts/provision_postgis.sh sets it up)"
    if required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def url_for(database: str) -> str:
    """The admin URL with another database name (host, port, user, query kept)."""
    p = urlsplit(ADMIN_URL)
    return f"{p.scheme}://{p.netloc}/{database}" + (f"?{p.query}" if p.query else "")


class Server:
    def __init__(self):
        try:
            self.admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            unavailable(f"no server at {ADMIN_URL}: {' '.join(str(exc).split())}")
        run = uuid.uuid4().hex[:8]
        self.prefix = f"redline_test_{run}"
        self.template = f"{self.prefix}_tpl"
        self.databases: list[str] = []  # to drop at the end
        self.count = 0
        self._make_template()

    def _exists(self, name: str) -> bool:
        return self.admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def _make_template(self) -> None:
        from redline.store.migrations import upgrade_postgres

        if self._exists(PROVISIONED_TEMPLATE):
            self.base = PROVISIONED_TEMPLATE
        else:  # not provisioned: postgis straight from the server, if it has it
            if not self.admin.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone():
                self.admin.close()
                unavailable("the server has no postgis extension")
            self.base = f"{self.prefix}_base"
            self._create(self.base, "template1")
            self.databases.append(self.base)
            with psycopg.connect(url_for(self.base), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
        self._create(self.template, self.base)
        self.databases.append(self.template)
        upgrade_postgres(url_for(self.template))

    def _create(self, name: str, template: str) -> None:
        for attempt in range(50):  # the template's last session may still be closing
            try:
                self.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                return
            except psycopg.errors.ObjectInUse:
                time.sleep(0.05 * (attempt + 1))
        raise RuntimeError(f"template {template} stays busy")

    def database(self, schema: bool = True) -> str:
        """A fresh database, migrated to head (``schema=False``: postgis only); its URL."""
        self.count += 1
        name = f"{self.prefix}_{self.count}"
        self._create(name, self.template if schema else self.base)
        self.databases.append(name)
        return url_for(name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.databases:
            self.databases.remove(name)

    def close(self) -> None:
        for name in reversed(self.databases):
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()
