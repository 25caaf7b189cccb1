"""Store factory: pick the implementation from the database URL."""

from __future__ import annotations

from pathlib import Path

from ..errors import StoreError
from .base import FLAG_FIELDS, STATS_GROUPS, FlagFilter, Store

__all__ = ["FLAG_FIELDS", "STATS_GROUPS", "FlagFilter", "Store", "open_store"]


def open_store(url: str | None = None) -> Store:
    """Open the store named by ``url`` (default: ``REDLINE_DATABASE_URL``)."""
    if url is None:
        from ..config import get_settings

        url = get_settings().database_url
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        from .postgis import PostGISStore

        return PostGISStore(url)
    raise StoreError(f"unsupported database URL {url!r}")


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////absolute.db, sqlite:// (in memory)."""
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):]
    return path or ":memory:"
