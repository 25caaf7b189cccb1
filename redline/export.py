"""Exports of flags for GIS analysts, written atomically (temp file + rename).

The file is written in a private folder next to the destination (``.redline-export-*``,
same file system, so the final rename is atomic), whose ``.lock`` is held under ``flock``
while the export runs. A killed export leaves that folder behind, never a partial file at
the destination; the next export to the same folder removes such folders once their lock
is free (their process is gone).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pyogrio

from .errors import InputError
from .faults import checkpoint
from .geo import STORAGE_CRS, parse_crs
from .store import FLAG_FIELDS, FlagFilter, Store

# format -> (file suffix, media type)
FORMATS = {
    "gpkg": (".gpkg", "application/geopackage+sqlite3"),
    "geojson": (".geojson", "application/geo+json"),
    "fgb": (".fgb", "application/flatgeobuf"),
    "parquet": (".parquet", "application/vnd.apache.parquet"),
    "csv": (".csv", "text/csv"),
    "kml": (".kml", "application/vnd.google-earth.kml+xml"),
    "shp": (".zip", "application/zip"),
}

# Shapefile (dBASE) field names hold at most 10 characters.
SHAPEFILE_NAMES = {
    "confidence": "confidenc", "first_seen": "first_seen", "last_seen": "last_seen",
    "n_observations": "n_obs", "zone_layer": "zone_layer", "zone_name": "zone_name",
    "zone_regime": "zone_regim", "admin_code": "admin_code", "admin_name": "admin_name",
    "permit_id": "permit_id", "layer_versions": "layer_vers", "rules_version": "rules_ver",
    "created_at": "created_at", "updated_at": "updated_at",
}


def flags_frame(store: Store, flt: FlagFilter | None = None, crs=None) -> gpd.GeoDataFrame:
    records = []
    for f in store.flags(flt):
        rec = {k: f.get(k) for k in FLAG_FIELDS}
        rec["layer_versions"] = json.dumps(rec["layer_versions"])
        rec["geometry"] = f["geometry"]
        records.append(rec)
    gdf = gpd.GeoDataFrame(records, columns=[*FLAG_FIELDS, "geometry"], geometry="geometry", crs=STORAGE_CRS)
    if crs is not None:
        gdf = gdf.to_crs(parse_crs(crs))
    return gdf


def _write(gdf: gpd.GeoDataFrame, path: Path, fmt: str) -> None:
    if fmt == "parquet":
        gdf.to_parquet(path)
    elif fmt == "shp":
        folder = path.parent / (path.name + ".d")
        folder.mkdir()
        try:
            shp = gdf.rename(columns=SHAPEFILE_NAMES)
            pyogrio.write_dataframe(shp, folder / "flags.shp", driver="ESRI Shapefile",
                                    layer_options={"ENCODING": "UTF-8"})  # writes flags.cpg
            with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
                for f in sorted(folder.iterdir()):
                    z.write(f, f.name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        driver = {"gpkg": "GPKG", "geojson": "GeoJSON", "fgb": "FlatGeobuf", "csv": "CSV", "kml": "KML"}[fmt]
        opts = {"layer_options": {"GEOMETRY": "AS_WKT"}} if fmt == "csv" else {}
        pyogrio.write_dataframe(gdf, path, driver=driver, layer="flags", **opts)


WORK_PREFIX = ".redline-export-"


def remove_stale_work_dirs(folder: Path) -> list[Path]:
    """Remove the work folders of exports that died in ``folder`` (lock free); the removed ones."""
    removed = []
    for work in folder.glob(f"{WORK_PREFIX}*"):
        try:
            fd = os.open(work / ".lock", os.O_RDONLY)
        except FileNotFoundError:  # not made by export_flags, or being removed
            continue
        except NotADirectoryError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # an export in progress
            os.close(fd)
            continue
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)
        removed.append(work)
    return removed


@contextmanager
def _work_dir(folder: Path):
    remove_stale_work_dirs(folder)
    for _ in range(5):
        work = Path(tempfile.mkdtemp(prefix=WORK_PREFIX, dir=folder))
        fd = os.open(work / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:  # another export's clean-up may have taken it for a dead one before we locked it
            if os.stat(work / ".lock").st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    else:
        raise OSError(f"cannot make a work folder in {folder}")
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        os.close(fd)


def export_flags(store: Store, path: str | Path, fmt: str | None = None, flt: FlagFilter | None = None,
                 crs=None) -> dict:
    """Write flags to ``path``; the file appears whole or not at all."""
    path = Path(path)
    fmt = (fmt or {".zip": "shp"}.get(path.suffix.lower(), path.suffix.lstrip("."))).lower()
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: folder does not exist")
    if fmt == "kml" and crs is not None and parse_crs(crs) != STORAGE_CRS:
        raise InputError("KML is always longitude/latitude (EPSG:4326); drop --crs")
    gdf = flags_frame(store, flt, crs)
    with _work_dir(path.parent) as work:
        tmp = work / f"out{FORMATS[fmt][0]}"  # GDAL creates the file itself
        _write(gdf, tmp, fmt)
        checkpoint("export-written")
        os.replace(tmp, path)
    return {"path": str(path), "format": fmt, "features": len(gdf), "crs": gdf.crs.to_string()}
