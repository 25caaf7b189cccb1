"""Reports people file: HTML and PDF from one set of Jinja2 templates, with map figures.

- :func:`flag_report` — the problem sheet of one flag (the field verification form);
- :func:`flags_report` — a packet of problem sheets, one per flag, for printing;
- :func:`check_report` — the report of an inspector's check over a region;
- :func:`screening_report` — the report of a screening of a proposed project footprint.

Each returns the document as bytes (``fmt`` 'pdf' or 'html'). The engine's; no web import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict, Unpack

from ..auth import OPERATOR, Principal
from ..errors import InputError
from ..model import CheckAnswer
from ..store import FlagFilter, Store
from .checkreport import check_context
from .render import FORMATS, MEDIA_TYPES, format_for, render
from .screenreport import screening_context
from .sheet import scan_locations, sheet_context

MAX_PACKET = 500  # sheets in one packet: beyond this, narrow the filters


class SheetOptions(TypedDict, total=False):
    """Who asks (the sheets show only what they may see), the evidence folder (photos as
    thumbnails) and an XYZ tile template drawn under the maps (Settings.basemap_url)."""

    principal: Principal
    evidence_dir: Path | None
    basemap_url: str | None


class AreaOptions(TypedDict, total=False):
    """Who asks (the map shows only the flags they may see), the report's title and an XYZ
    tile template drawn under its maps (Settings.basemap_url)."""

    principal: Principal
    title: str | None
    basemap_url: str | None


def flag_report(store: Store, flag_id: int, fmt: str = "pdf", **options: Unpack[SheetOptions]) -> bytes:
    """The problem sheet of flag ``flag_id`` (refused when the principal may not see it)."""
    return render("flags.html", fmt, sheets=[sheet_context(store, flag_id, **options)])


def flags_report(store: Store, flt: FlagFilter | None, fmt: str = "pdf", **options: Unpack[SheetOptions]) -> bytes:
    """One problem sheet per flag matching ``flt`` (in the principal's jurisdiction), by id."""
    flt = options.get("principal", OPERATOR).scope(flt)
    n = store.count_flags(flt)
    if n > MAX_PACKET:
        raise InputError(f"{n} flags match; a packet holds at most {MAX_PACKET} sheets: narrow the filters")
    ids = [f["id"] for f in store.flags(flt, with_geometry=False)]
    locations = scan_locations(store)  # once for the packet
    return render(
        "flags.html", fmt, sheets=[sheet_context(store, i, locations=locations, **options) for i in sorted(ids)]
    )


def check_report(store: Store, region, answer: CheckAnswer, fmt: str = "pdf", **options: Unpack[AreaOptions]) -> bytes:
    """The report of a check: ``answer`` is :func:`redline.check.check_region`'s for the lon/lat
    ``region``."""
    return render("check.html", fmt, **check_context(store, region, answer, **options))


def screening_report(store: Store, footprint, answer: dict, fmt: str = "pdf", **options: Unpack[AreaOptions]) -> bytes:
    """The report of a screening: ``answer`` is :func:`redline.screening.screen`'s for the lon/lat
    ``footprint``."""
    return render("screening.html", fmt, **screening_context(store, footprint, answer, **options))


__all__ = [
    "check_report",
    "FORMATS",
    "MEDIA_TYPES",
    "MAX_PACKET",
    "flag_report",
    "flags_report",
    "format_for",
    "screening_report",
]
