"""What the reports' contexts have in common: when and for whom a report was printed, the layer
versions it was made from, and its maps as embedded images."""

from __future__ import annotations

from pathlib import Path

from ..auth import Principal
from ..clock import now
from ..store import Store
from .figures import MapFigure
from .render import data_uri

PROVENANCE_KEYS = ("kind", "version", "source", "source_crs", "loaded_at")


def printed_at() -> str:
    """Now, to the minute, as a report prints it."""
    return now()[:16].replace("T", " ") + " UTC"


def layer_provenance(store: Store) -> list[dict]:
    """The store's layer versions as the provenance table lists them (templates/_macros.html)."""
    layers = [{k: lv.get(k) for k in PROVENANCE_KEYS} for lv in store.layer_versions()]
    for lv in layers:
        lv["source"] = Path(lv["source"]).name if lv["source"] else None  # no server paths in a filed report
    return layers


def report_header(store: Store, principal: Principal, title: str | None) -> dict:
    """The context of a filed report's heading and provenance table."""
    return {
        "title": title,
        "generated_at": printed_at(),
        "principal": principal.name,
        "layers": layer_provenance(store),
    }


def map_image(fig: MapFigure) -> dict:
    """A map as a template shows it: the PNG as a data URI and its legend."""
    return {"src": data_uri(fig.png), "legend": fig.legend}
