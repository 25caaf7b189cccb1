"""Jinja2 templates (``templates/``, the one place) to HTML, and HTML to PDF with WeasyPrint.

The HTML is self-contained: styles inline, figures and photos as ``data:`` URIs, no link to
any server. The PDF is the same HTML printed (``@page`` rules in ``report.css``); WeasyPrint
may fetch nothing but ``data:`` URIs, so a report never reads a file or the network.
"""

from __future__ import annotations

import base64
import math
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .. import vocab
from .figures import REGIME_STYLE, SEVERITY_COLOURS

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("pdf", "html")
MEDIA_TYPES = {"pdf": "application/pdf", "html": "text/html; charset=utf-8"}


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _num(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _pct(x) -> str:
    return "–" if x is None else f"{x:.0%}"


def _dms(value: float, pos: str, neg: str) -> str:
    sign = pos if value >= 0 else neg
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = (v - d - m / 60) * 3600
    return f"{d}°{m:02d}′{s:05.2f}″{sign}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        num=_num,
        pct=_pct,
        data_uri=data_uri,
        mu=lambda ha: _num(None if ha is None else vocab.hectares_to_mu(ha), 1),
        lon=lambda v: _dms(v, "E", "W"),
        lat=lambda v: _dms(v, "N", "S"),
        when=lambda t: (t or "")[:16].replace("T", " "),
    )  # an ISO timestamp, to the minute (UTC)
    env.globals.update(
        severity_colours=SEVERITY_COLOURS,
        regime_labels={k: v[2] for k, v in REGIME_STYLE.items()},
        # our own stylesheet, inlined as it is (raw text inside <style>: never entity-escaped)
        css=Markup((TEMPLATES / "report.css").read_text(encoding="utf-8")),
    )
    return env


def render_html(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def _fetcher():
    """A URL fetcher that serves ``data:`` URIs and refuses everything else."""
    try:
        from weasyprint.urls import URLFetcher
    except ImportError:  # pragma: no cover - WeasyPrint before the URLFetcher class
        from weasyprint import default_url_fetcher

        def fetch(url, *args, **kwargs):
            if not url.startswith("data:"):
                raise ValueError(f"reports fetch no URL but data: URIs ({url[:40]})")
            return default_url_fetcher(url, *args, **kwargs)

        return fetch
    return URLFetcher(allowed_protocols=("data",))


def html_to_pdf(html: str) -> bytes:
    """Print the HTML to PDF (A4, the ``@page`` rules of the template)."""
    import logging

    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # CSS it ignores is not news
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return HTML(string=html, url_fetcher=_fetcher()).write_pdf()


def render(template: str, fmt: str, **context) -> bytes:
    """The report as bytes in ``fmt`` ('pdf' or 'html')."""
    if fmt not in FORMATS:
        from ..errors import InputError

        raise InputError(f"report format {fmt!r}: expected one of {', '.join(FORMATS)}")
    html = render_html(template, fmt=fmt, **context)
    return html.encode("utf-8") if fmt == "html" else html_to_pdf(html)


def format_for(path: Path, fmt: str | None = None) -> str:
    """The report format a file name asks for (``.pdf`` or ``.html``/``.htm``)."""
    from ..errors import InputError

    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix in (".html", ".htm"):
        return "html"
    raise InputError(f"{path}: a report is written as .pdf or .html")
