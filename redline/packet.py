"""Field packets: what a field team takes offline, as one zip.

``redline packet [flag filters] -o FILE.zip`` and ``GET /packet`` build, for the flags that
match (inside the principal's jurisdiction, at most ``Settings.packet_max_flags``):

- ``flags.gpkg``: layers ``flags`` (polygons, the QGIS severity style of redline.export in
  ``layer_styles``), ``flag_points`` (their centroids) and ``zones`` (the red-line areas,
  reserve zones and permits they touch), for QField-type apps;
- ``flags.kml``: one named placemark per flag, styled by severity (redline.export's KML);
- ``flags.gpx``: one waypoint per flag at its centroid, named by flag id (GDAL's GPX driver);
- ``problem-sheets.pdf``: the problem sheets (redline.reports) when PDF rendering is available
  and the packet is small enough for one print run; else the manifest says why not;
- ``manifest.json`` and ``README.txt``: counts, the filters, each file's size and SHA-256.

Every file is made from one reading of the flags, so all of them hold the same flags. The
zip is written to a temp file beside the destination and renamed: whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from dataclasses import asdict
from datetime import date
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

from . import __version__
from .auth import OPERATOR, Principal
from .clock import now
from .config import DEFAULTS, Settings
from .errors import InputError
from .export import _write as write_flags
from .export import flags_frame
from .geo import STORAGE_CRS
from .store import FlagFilter, Store

ZONE_KINDS = ("redline", "reserve", "permit")  # the zones around the flags
MEDIA_TYPE = "application/zip"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def filters_of(flt: FlagFilter) -> dict:
    """The filters as the manifest states them (empty ones left out)."""
    out = {}
    for k, v in asdict(flt).items():
        if v is None or v == () or v == []:
            continue
        if k == "region":
            v = shapely.to_wkt(v, rounding_precision=7)
        elif k == "cql":
            v = str(v)
        elif isinstance(v, date):
            v = v.isoformat()
        out[k] = v
    return out


def _points(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Each flag's centroid with the fields a field team needs."""
    centroids = shapely.centroid(gdf.geometry.values)
    cols = ["id", "status", "severity", "activity", "zone_name", "zone_regime", "admin_name", "area_ha", "last_seen"]
    df = pd.DataFrame({c: gdf[c].to_numpy() for c in cols})
    df["lon"] = shapely.get_x(centroids).round(7)
    df["lat"] = shapely.get_y(centroids).round(7)
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries(centroids, crs=STORAGE_CRS), crs=STORAGE_CRS)


def _zones(store: Store, gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The zones the flags touch (exactly, in the store)."""
    area = shapely.union_all(gdf.geometry.values)
    zones = store.zones(ZONE_KINDS, region=area)
    df = pd.DataFrame(
        {
            "zone_id": [z.id for z in zones],
            "kind": [z.kind for z in zones],
            "name": [z.name for z in zones],
            "regime": [z.regime for z in zones],
            "code": [z.code for z in zones],
            "area_ha": [round(z.area_ha, 4) for z in zones],
        }
    )
    return gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([z.geometry for z in zones], crs=STORAGE_CRS), crs=STORAGE_CRS)


def _gpx(points: gpd.GeoDataFrame, path: Path) -> None:
    """Waypoints named by flag id (``#12``), described by severity, activity and zone."""
    desc = [
        f"{r.severity or '-'} · {r.activity} · {r.zone_name or ''} · {r.admin_name or ''}"
        f" · {float(r.area_ha or 0):.2f} ha"
        for r in points.itertuples()
    ]
    wpt = gpd.GeoDataFrame(
        {"name": [f"#{i}" for i in points["id"]], "desc": desc, "type": [str(s or "") for s in points["severity"]]},
        geometry=points.geometry.values,
        crs=STORAGE_CRS,
    )
    pyogrio.write_dataframe(wpt, path, driver="GPX", layer="waypoints")


def _sheets(
    store: Store, ids: list[int], principal: Principal, evidence_dir: Path | None, path: Path, most: int | None
) -> dict:
    """The problem sheets as PDF, when they can be made: {"included": bool, "reason": ...}."""
    try:
        from .reports import MAX_PACKET
        from .reports.render import render
        from .reports.sheet import sheet_context
    except ImportError as exc:  # the report libraries are not installed
        return {"included": False, "reason": f"reports unavailable: {exc}"}
    most = MAX_PACKET if most is None else min(most, MAX_PACKET)
    if len(ids) > most:
        return {
            "included": False,
            "reason": f"{len(ids)} flags: problem sheets are printed in a packet for at most {most}"
            " (narrow the filters, or print them with `redline report flags`)",
        }
    sheets = [sheet_context(store, i, principal=principal, evidence_dir=evidence_dir) for i in ids]
    try:
        data = render("flags.html", "pdf", sheets=sheets)
    except (ImportError, OSError) as exc:  # WeasyPrint or its system libraries missing
        return {"included": False, "reason": f"PDF rendering unavailable: {type(exc).__name__}: {exc}"}
    path.write_bytes(data)
    return {"included": True, "reason": None}


README = """redline field packet / 外业包
generated {generated_at} by {by} (redline {version})

{flags} flags, {zones} zones around them; filters: {filters}

  flags.gpkg          GeoPackage: layers flags (polygons, QGIS style by severity), flag_points
                      (centroids) and zones; opens in QGIS / QField
  flags.kml           named placemarks styled by severity (Google Earth, phone apps)
  flags.gpx           one waypoint per flag at its centroid, named by flag id (GPS units)
{sheets_line}
  manifest.json       this, as JSON

SHA-256:
{sums}
"""


def build_packet(
    store: Store,
    folder: Path,
    flt: FlagFilter | None = None,
    *,
    principal: Principal = OPERATOR,
    settings: Settings = DEFAULTS,
    sheets: bool = True,
    max_sheets: int | None = None,
) -> tuple[Path, dict]:
    """Build the packet's zip in ``folder`` (a private work folder): (its path, the manifest).
    ``sheets``: with the problem sheets, for at most ``max_sheets`` flags (default: as many as
    one print run of redline.reports holds)."""
    flt = principal.scope(flt)
    n = store.count_flags(flt)
    if n > settings.packet_max_flags:
        raise InputError(
            f"{n} flags match; a field packet holds at most {settings.packet_max_flags}: narrow the filters"
        )
    if n == 0:
        raise InputError("no flags match these filters: nothing to put in a field packet")
    folder = Path(folder)
    gdf = flags_frame(store, flt).sort_values("id").reset_index(drop=True)  # one reading for every file
    if len(gdf) > settings.packet_max_flags:  # more came in since the count
        raise InputError(f"more than {settings.packet_max_flags} flags match: narrow the filters")
    ids = [int(i) for i in gdf["id"]]
    points = _points(gdf)
    zones = _zones(store, gdf)
    gpkg, kml, gpx, pdf = (folder / name for name in ("flags.gpkg", "flags.kml", "flags.gpx", "problem-sheets.pdf"))
    write_flags(gdf, gpkg, "gpkg")  # layer "flags" with its QGIS style
    pyogrio.write_dataframe(points, gpkg, layer="flag_points", driver="GPKG")
    pyogrio.write_dataframe(
        zones, gpkg, layer="zones", driver="GPKG", promote_to_multi=True, geometry_type="MultiPolygon"
    )
    write_flags(gdf, kml, "kml")
    _gpx(points, gpx)
    if sheets:
        sheet_state = _sheets(store, ids, principal, settings.evidence_dir, pdf, max_sheets)
    else:
        sheet_state = {"included": False, "reason": "left out on request"}
    files = [gpkg, kml, gpx] + ([pdf] if sheet_state["included"] else [])
    sums = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}
    manifest: dict = {
        "generator": f"redline {__version__}",
        "generated_at": now(),
        "by": {"name": principal.name, "role": principal.role, "jurisdiction": list(principal.jurisdiction)},
        "filters": filters_of(flt),
        "counts": {"flags": len(ids), "flag_points": len(points), "zones": len(zones), "waypoints": len(points)},
        "flag_ids": ids,
        "problem_sheets": sheet_state,
        "files": sums,
    }
    readme = README.format(
        generated_at=manifest["generated_at"],
        by=f"{principal.name} ({principal.role})",
        version=__version__,
        flags=len(ids),
        zones=len(zones),
        filters=json.dumps(manifest["filters"], ensure_ascii=False) if manifest["filters"] else "none",
        sheets_line=(
            "  problem-sheets.pdf  the problem sheets (field verification forms), one per flag"
            if sheet_state["included"]
            else f"  (no problem sheets: {sheet_state['reason']})"
        ),
        sums="\n".join(f"  {v['sha256']}  {k}" for k, v in sums.items()),
    )
    out = folder / "packet.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in files:
            z.write(p, p.name)
        texts = {"manifest.json": json.dumps(manifest, ensure_ascii=False, indent=2), "README.txt": readme}
        for name, text in texts.items():
            info = zipfile.ZipInfo(name, date_time=time.gmtime()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # readable once unpacked (writestr's default is 0600)
            z.writestr(info, text)
    return out, manifest


def write_packet(
    store: Store,
    path: str | Path,
    flt: FlagFilter | None = None,
    *,
    principal: Principal = OPERATOR,
    settings: Settings = DEFAULTS,
    sheets: bool = True,
    max_sheets: int | None = None,
) -> dict:
    """Build a packet and put it at ``path`` (a .zip), whole or not at all; the manifest."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise InputError(f"{path}: a field packet is a .zip file")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: folder does not exist")
    with tempfile.TemporaryDirectory(prefix=".redline-packet-", dir=path.parent) as work:
        built, manifest = build_packet(
            store, Path(work), flt, principal=principal, settings=settings, sheets=sheets, max_sheets=max_sheets
        )
        os.chmod(built, 0o644)
        os.replace(built, path)
    return manifest
