"""The sample scenario (scripts/make_sample_data.py) loaded and scanned through the engine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from redline.change import resolve_product
from redline.layers import add_layer, read_layer, read_mapping_file
from redline.scan import scan_product
from redline.store import open_store

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (
    ("redline", "redline.gpkg"),
    ("reserve", "reserve.gpkg"),
    ("permit", "permits.zip"),
    ("admin", "admin.kml"),
    ("control", "control_units.gpkg"),  # environmental control units (三线一单), as scripts/demo.sh loads them
)
PRODUCTS = ("change_2026-06.tif", "change_2026-09.tif", "landcover_pair.json")


def generator():
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "scripts" / "make_sample_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def build(out: Path, scan: bool = True, url: str | None = None) -> tuple[dict, str]:
    """Generate the scenario into ``out``, load its layers and (optionally) scan it into the
    store at ``url`` (default: a new SQLite file in ``out``)."""
    truth = generator().generate(out)
    url = url or f"sqlite:///{out / 'store.db'}"
    store = open_store(url)
    try:
        mapping = ROOT / "sample_data" / "mapping.toml"
        for kind, name in LAYERS:
            add_layer(store, read_layer(kind, out / name, mapping=read_mapping_file(mapping, kind)))
        if scan:
            for name in PRODUCTS:
                scan_product(store, resolve_product(out / name))
    finally:
        store.close()
    return truth, url
