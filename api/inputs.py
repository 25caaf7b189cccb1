"""Parsing user input at the edge: GeoJSON bodies, uploaded files, filters."""

from __future__ import annotations

import shutil
import tempfile
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from redline import geo
from redline.config import Settings
from redline.errors import InputError
from redline.regions import RegionLimits
from redline.safeio import Limits


def region_limits(settings: Settings) -> RegionLimits:
    """What one region may cost, from the settings."""
    return RegionLimits(
        max_vertices=settings.max_region_vertices,
        max_features=settings.max_region_features,
        max_crossings=settings.max_region_crossings,
        files=Limits(
            max_members=settings.max_archive_members,
            max_unpacked_bytes=settings.max_unpacked_bytes,
            max_ratio=settings.max_unpack_ratio,
            max_json_bytes=settings.max_body_bytes,
        ),
    )


@asynccontextmanager
async def saved_upload(upload: UploadFile):
    """The upload in a private temp folder under a neutral name (never the client's), and
    the client's base name for messages; the folder goes when the block ends."""
    folder = Path(tempfile.mkdtemp(prefix="redline-upload-"))
    try:
        path = folder / "upload"

        def copy() -> None:
            with open(path, "wb") as out:
                shutil.copyfileobj(upload.file, out, 1 << 20)

        await run_in_threadpool(copy)
        name = Path((upload.filename or "upload").replace("\\", "/")).name[:100] or "upload"
        yield str(path), name
    finally:
        await run_in_threadpool(shutil.rmtree, folder, True)


def parse_datetime_interval(value: str | None) -> tuple[date | None, date | None]:
    """OGC ``datetime``: an instant, or ``start/end`` with ``..`` for open ends."""
    if value is None:
        return None, None

    def one(text: str) -> date | None:
        if text in ("", ".."):
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            try:
                return date.fromisoformat(text)
            except ValueError:
                raise InputError(f"datetime {text!r} is not RFC 3339") from None

    if "/" in value:
        start, _, end = value.partition("/")
        a, b = one(start), one(end)
        if a and b and a > b:
            raise InputError("datetime interval ends before it starts")
        return a, b
    d = one(value)
    return d, d


def parse_bbox(value: str | None):
    return None if value is None else geo.parse_bbox(value)
