"""Protection layers: read any OGR source, map fields, repair, reproject to lon/lat."""

from __future__ import annotations

import hashlib
import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from . import vocab
from .errors import CRSError, FieldMappingError, InputError, MissingFileError
from .geo import STORAGE_CRS, area_ha, parse_crs, polygonal
from .model import Zone  # the record, defined once with the others (redline.model)
from .safeio import Limits, geojson_crs, geojson_features, sniff_vector

if TYPE_CHECKING:  # the store imports this module (LoadReport)
    from .store import Store

# Canonical attributes per layer kind: name -> required?
SCHEMA: dict[str, dict[str, bool]] = {
    "redline": {"name": True, "function_type": True, "code": False},
    "reserve": {"zone": True, "name": False, "code": False},
    "permit": {"name": True, "valid_from": True, "valid_to": True, "permit_no": False, "activity": False},
    "admin": {"name": True, "code": True},
    # environmental control units (环境管控单元): unit code (the access list's key), name, type
    "control": {"code": True, "name": True, "unit_type": True},
}


@dataclass
class LoadReport:
    kind: str
    source: str
    source_crs: str
    sha256: str
    features_read: int
    zones: list[Zone]
    repaired: int = 0
    dropped_empty: int = 0
    dropped_not_polygon: int = 0
    field_map: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "kind": self.kind,
            "source": self.source,
            "source_crs": self.source_crs,
            "features_read": self.features_read,
            "zones_loaded": len(self.zones),
            "repaired": self.repaired,
            "dropped_empty": self.dropped_empty,
            "dropped_not_polygon": self.dropped_not_polygon,
            "area_ha": round(sum(z.area_ha for z in self.zones), 2),
        }


def add_layer(store: Store, report: LoadReport) -> dict:
    """Store a new version of a layer (the store's ``add_layer_version``), then render its
    zoomed-out vector tiles once (:func:`redline.tiles.prerender_zone_tiles`: after the
    commit, in transactions of their own, so the load stands whatever happens to them).
    The version, with ``tiles``: what was pre-rendered."""
    from .tiles import prerender_zone_tiles  # the MVT encoder: only when a layer is loaded

    version = store.add_layer_version(report)
    return {**version, "tiles": prerender_zone_tiles(store, report.kind)}


def read_mapping_file(path: Path, kind: str) -> dict[str, str]:
    """A TOML file with one table per kind: ``[redline] name = "HXMC"``."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"cannot read field mapping {path}: {exc}") from None
    return {str(k): str(v) for k, v in doc.get(kind, {}).items()}


def _parse_date(value, field_name: str, row: int) -> date | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT or str(value).strip() == "":
        return None
    try:
        return pd.Timestamp(value).date()
    except (ValueError, TypeError):
        raise FieldMappingError(f"feature {row}: {field_name} {value!r} is not a date") from None


def _resolve_fields(kind: str, columns: list[str], mapping: dict[str, str]) -> dict[str, str | None]:
    unknown = set(mapping) - set(SCHEMA[kind])
    if unknown:
        raise FieldMappingError(
            f"unknown canonical field(s) {', '.join(sorted(unknown))} for a {kind} layer; "
            f"known: {', '.join(SCHEMA[kind])}"
        )
    by_lower = {c.lower(): c for c in columns}
    resolved: dict[str, str | None] = {}
    for canon, required in SCHEMA[kind].items():
        src = mapping.get(canon)
        if src is not None and src not in columns:
            src = by_lower.get(src.lower(), src)  # KML capitalises "Name", shapefiles upper-case
        if src is not None and src not in columns:
            raise FieldMappingError(
                f"field {src!r} (mapped to {canon}) is not in the layer; it has: {', '.join(columns) or 'no fields'}"
            )
        src = src or by_lower.get(canon)
        if src is None and required:
            raise FieldMappingError(
                f"required field {canon!r} is missing from the {kind} layer; map it with "
                f"--field {canon}=YOUR_FIELD (the layer has: {', '.join(columns) or 'no fields'})"
            )
        resolved[canon] = src
    return resolved


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def read_layer(
    kind: str,
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    layer: str | None = None,
    max_vertices: int = 2_000_000,
) -> LoadReport:
    """Read a protection layer from any OGR source into canonical zones."""
    if kind not in vocab.ZONE_KINDS:
        raise InputError(f"unknown layer kind {kind!r}; expected one of {', '.join(vocab.ZONE_KINDS)}")
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    gdf = _read_frame(path, layer)
    if gdf.crs is None:
        raise CRSError(f"{path}: layer has no CRS; declare it (e.g. a .prj file, or ogr2ogr -a_srs EPSG:4490)")
    source_crs = gdf.crs.to_string()
    fields = _resolve_fields(kind, [c for c in gdf.columns if c != "geometry"], mapping or {})

    geoms = gdf.geometry.values
    n = len(gdf)
    empty = shapely.is_missing(np.asarray(geoms)) | shapely.is_empty(np.asarray(geoms))
    counts = shapely.get_num_coordinates(np.asarray(geoms))
    if n and counts.max() > max_vertices:
        row = int(counts.argmax())
        raise InputError(
            f"{path}: feature {row} has {int(counts[row]):,} vertices, over the limit of {max_vertices:,}; "
            "simplify it or raise REDLINE_MAX_VERTICES_PER_FEATURE"
        )
    invalid = ~empty & ~shapely.is_valid(np.asarray(geoms))
    geoms = np.asarray(geoms).copy()
    geoms[invalid] = shapely.make_valid(geoms[invalid])
    lonlat = gdf.set_geometry(geoms, crs=gdf.crs).to_crs(STORAGE_CRS).geometry.values

    report = LoadReport(
        kind, str(path), source_crs, _sha256(path), n, [], field_map={k: v for k, v in fields.items() if v}
    )
    report.repaired = int(invalid.sum())
    report.dropped_empty = int(empty.sum())
    for i in range(n):
        if empty[i]:
            continue
        geom = polygonal(lonlat[i])
        if geom is None:
            report.dropped_not_polygon += 1
            continue
        if not geom.is_valid:  # reprojection can fold a sliver; repair once more
            geom = polygonal(shapely.make_valid(geom))
        row = gdf.iloc[i]
        value = {c: (None if src is None else row[src]) for c, src in fields.items()}
        report.zones.append(_zone(kind, value, geom, i, row, fields))
    if kind == vocab.CONTROL:  # the unit code keys the access list: one unit per code
        seen: dict[str | None, str] = {}
        for z in report.zones:
            if z.code in seen:
                raise FieldMappingError(
                    f"{path}: control unit code {z.code!r} is used by {seen[z.code]!r} and {z.name!r}"
                )
            seen[z.code] = z.name
    return report


def _read_frame(path: Path, layer: str | None) -> gpd.GeoDataFrame:
    """A layer file, identified by content and read by its one allowlisted driver
    (:mod:`redline.safeio`); GeoJSON is parsed in Python."""
    with tempfile.TemporaryDirectory(prefix="redline-layer-") as work:
        source = sniff_vector(
            path,
            str(path),
            Path(work),
            Limits(max_members=10_000, max_unpacked_bytes=16 * 1024**3, max_json_bytes=4 * 1024**3),
        )
        if source.geojson is not None:
            doc = source.geojson
            features = geojson_features(doc)
            try:
                gdf = gpd.GeoDataFrame.from_features(features)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"{path}: invalid GeoJSON features ({str(exc)[:200]})") from None
            if "geometry" not in gdf:
                raise InputError(f"{path}: no features")
            return gdf.set_crs(parse_crs(geojson_crs(doc) or "OGC:CRS84"))
        try:
            return pyogrio.read_dataframe(source.path, layer=layer)
        except (DataSourceError, DataLayerError) as exc:
            raise InputError(f"{path}: not a readable {source.format} dataset ({str(exc).splitlines()[0]})") from None


def _text(v) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v).strip() or None


def _zone(kind: str, value: dict, geom, row_no: int, row, fields) -> Zone:
    used = {v for v in fields.values() if v}
    extra = {k: _text(v) for k, v in row.items() if k != "geometry" and k not in used and _text(v) is not None}
    code = _text(value.get("code"))
    if kind == "redline":
        name = _text(value["name"])
        if name is None:
            raise FieldMappingError(f"feature {row_no}: red-line name ({fields['name']}) is empty")
        zone = Zone(kind, name, vocab.REDLINE, geom, code, {"function_type": _text(value["function_type"]), **extra})
    elif kind == "reserve":
        raw = _text(value["zone"])
        if raw is None:
            raise FieldMappingError(f"feature {row_no}: reserve zone ({fields['zone']}) is empty")
        try:
            regime = vocab.regime(raw)
        except FieldMappingError as exc:
            raise FieldMappingError(f"feature {row_no}: {exc}") from None
        reserve_name = _text(value.get("name")) or "reserve"
        zone = Zone(kind, reserve_name, regime, geom, code, {"reserve": reserve_name, **extra})
    elif kind == "permit":
        vf = _parse_date(value["valid_from"], "valid_from", row_no)
        vt = _parse_date(value["valid_to"], "valid_to", row_no)
        act = _text(value.get("activity"))
        zone = Zone(
            kind,
            _text(value["name"]) or f"permit {row_no}",
            "permit",
            geom,
            _text(value.get("permit_no")) or code,
            extra,
            vf,
            vt,
            vocab.activity(act) if act else None,
        )
    elif kind == vocab.CONTROL:
        name, code, raw = _text(value["name"]), _text(value["code"]), _text(value["unit_type"])
        if name is None or code is None or raw is None:
            raise FieldMappingError(f"feature {row_no}: a control unit needs a code, a name and a unit type")
        try:
            regime = vocab.control_regime(raw)
        except FieldMappingError as exc:
            raise FieldMappingError(f"feature {row_no}: {exc}") from None
        zone = Zone(kind, name, regime, geom, code, extra)
    else:
        name, code = _text(value["name"]), _text(value["code"])
        if name is None or code is None:
            raise FieldMappingError(f"feature {row_no}: admin unit needs a name and a code")
        zone = Zone(kind, name, "admin", geom, code, extra)
    zone.area_ha = area_ha(geom)
    return zone
