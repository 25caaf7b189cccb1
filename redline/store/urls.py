"""Store URLs and driver messages: shared by the factory, the migrations, the backends and the CLI
(none of which needs to import a backend for them)."""

from __future__ import annotations

import re


def sqlite_path(url: str) -> str:
    """sqlite:///relative.db, sqlite:////absolute.db, sqlite:// (in memory)."""
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else url[len("sqlite://") :]
    return path or ":memory:"


def conninfo(url: str) -> str:
    """The libpq URL for a store URL (``postgresql+psycopg://`` is accepted too)."""
    return re.sub(r"^postgresql\+psycopg://", "postgresql://", url)


def sqlalchemy_url(url: str) -> str:
    """postgresql://... → postgresql+psycopg://... (SQLAlchemy's name for psycopg 3)."""
    scheme, rest = url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme.startswith("postgresql") else url


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def oneline(exc: BaseException) -> str:
    """A driver's (multi-line) message on one line."""
    return " ".join(str(exc).split())
