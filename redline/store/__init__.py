"""Store factory: pick the implementation from the database URL."""

from __future__ import annotations

from ..errors import StoreError
from .base import FLAG_FIELDS, STATS_GROUPS, FlagFilter, Store, ZoneFilter
from .urls import sqlite_path

__all__ = ["FLAG_FIELDS", "STATS_GROUPS", "FlagFilter", "Store", "ZoneFilter", "open_store"]


def open_store(url: str) -> Store:
    """Open the store named by ``url`` (``sqlite:///file.db`` or ``postgresql://...``)."""
    if url.startswith("sqlite://"):
        from .sqlite import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgresql+psycopg://")):
        from .postgis import PostGISStore

        return PostGISStore(url)
    raise StoreError(f"unsupported database URL {url!r}")
