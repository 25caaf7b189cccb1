"""Exports of flags for GIS analysts, written atomically (temp file + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import geopandas as gpd
import pyogrio

from .errors import InputError
from .geo import STORAGE_CRS, parse_crs
from .store import FLAG_FIELDS, FlagFilter, Store

# format -> (GDAL driver, file suffix, extra dataset/layer options)
FORMATS = {
    "gpkg": ("GPKG", ".gpkg", {}),
    "geojson": ("GeoJSON", ".geojson", {}),
    "fgb": ("FlatGeobuf", ".fgb", {}),
    "csv": ("CSV", ".csv", {"layer_options": {"GEOMETRY": "AS_WKT"}}),
}


def flags_frame(store: Store, flt: FlagFilter | None = None, crs=None) -> gpd.GeoDataFrame:
    rows = store.flags(flt)
    records = []
    for f in rows:
        rec = {k: f.get(k) for k in FLAG_FIELDS}
        rec["layer_versions"] = json.dumps(rec["layer_versions"])
        rec["geometry"] = f["geometry"]
        records.append(rec)
    gdf = gpd.GeoDataFrame(records, columns=[*FLAG_FIELDS, "geometry"], geometry="geometry", crs=STORAGE_CRS)
    if crs is not None:
        gdf = gdf.to_crs(parse_crs(crs))
    return gdf


def export_flags(store: Store, path: str | Path, fmt: str | None = None, flt: FlagFilter | None = None,
                 crs=None) -> dict:
    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.parent.exists():
        raise InputError(f"{path.parent}: folder does not exist")
    driver, suffix, opts = FORMATS[fmt]
    gdf = flags_frame(store, flt, crs)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # GDAL wants to create the file itself
    try:
        pyogrio.write_dataframe(gdf, tmp, driver=driver, layer="flags", **opts)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": str(path), "format": fmt, "features": len(gdf), "crs": gdf.crs.to_string()}
