"""National leads (线索): issued by the national red-line supervision platform, verified here,
answered back in the shape they came in.

A lead file is a zipped shapefile, a GeoPackage (or any vector file :mod:`redline.safeio`
allows), or a table (XLSX, CSV) with longitude/latitude columns. Vector files are read only
through :mod:`redline.safeio`'s checked drivers; tables are parsed in Python (openpyxl
read-only, the csv module) under :class:`LeadLimits`; GDAL never sees them.

``import_leads`` turns each lead into a problem with source ``national`` and the lead's own id
(:mod:`redline.problems`: judged like a scanned patch, and an observation of the flag it
overlaps, never a duplicate), and keeps the lead as it came (its original columns, the
file's format and CRS) in the ``leads`` table. Batch + lead id is the idempotency key: a
lead already imported in that batch is left alone, so importing a file twice changes nothing.
An importer with a jurisdiction (an inspector) records only the leads that fall in it (where the
flag would lie, or the flag the lead observes); the others are refused, each with its reason, and
nothing of them is written (an administrator may import them later).
``export_results`` writes the batch back (XLSX, CSV, GeoPackage or zipped shapefile) with the
lead ids and original columns plus the verification results.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import shapely

from .auth import OPERATOR, Principal
from .clock import now
from .config import DEFAULTS, Settings
from .errors import CRSError, FieldMappingError, InputError, MissingFileError, NotFoundError, TooLargeError
from .geo import STORAGE_CRS, parse_crs, reproject
from .problems import Problem, Recorder, problem_area
from .safeio import Limits, geojson_crs, geojson_features, sniff_vector
from .scan import match_flag
from .store import Store

# canonical field -> the column names that mean it, tried in order (case and spaces ignored)
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "lead_id": ("线索编号", "图斑编号", "线索ID", "编号", "XSBH", "TBBH", "lead_id", "lead id", "id"),
    "activity": ("活动类型", "问题类型", "变化类型", "类型", "HDLX", "activity", "type"),
    "date": ("发现日期", "发现时间", "下发日期", "日期", "FXRQ", "date", "found_on", "found on"),
    "lon": ("经度", "中心经度", "JD", "lon", "lng", "longitude", "x"),
    "lat": ("纬度", "中心纬度", "WD", "lat", "latitude", "y"),
}
REQUIRED = ("lead_id",)
TABLE_CRS = "EPSG:4490"  # CGCS2000: the national platform's coordinates

# the verification results written back next to the original columns
RESULT_COLUMNS = ("flag_id", "status", "finding", "note", "verified", "deadline", "closed_on")
FINDINGS = {"verified_violation": "violation", "false_positive": "false positive", "permitted": "permitted"}
EXPORT_FORMATS = {".xlsx": "xlsx", ".csv": "csv", ".gpkg": "gpkg", ".zip": "shp"}


@dataclass(frozen=True)
class LeadLimits:
    """What one lead file may cost."""

    max_rows: int = 100_000
    max_columns: int = 200
    max_cell_chars: int = 10_000
    max_table_bytes: int = 64 * 1024 * 1024  # a CSV, or an XLSX unpacked
    files: Limits = Limits(max_members=64, max_unpacked_bytes=1 << 30, max_json_bytes=256 * 1024 * 1024)


@dataclass
class LeadRow:
    lead_id: str
    attrs: dict  # the original columns, in order, as JSON values
    geometry: object  # lon/lat
    activity: str
    found_on: date


@dataclass
class LeadFile:
    name: str
    format: str  # xlsx | csv | gpkg | shp | geojson | kml | fgb
    crs: str | None
    columns: list[str]
    rows: list[LeadRow]


@dataclass
class ImportResult:
    batch: str
    leads: int = 0
    new_flags: list[int] = field(default_factory=list)
    observed_flags: list[int] = field(default_factory=list)
    unchanged: int = 0
    outside: list[str] = field(default_factory=list)  # lead ids in no red-line or reserve zone
    refused: list[dict] = field(default_factory=list)  # {"lead_id", "reason"}: outside the importer's jurisdiction

    def summary(self) -> dict:
        return dict(self.__dict__)


# --- mapping --------------------------------------------------------------------------------


def read_mapping(path: str | Path) -> dict[str, str]:
    """A column mapping file: JSON or TOML, ``{"lead_id": "COL", "lon": "COL", ...}`` (in TOML
    at the top level or under ``[leads]``); ``crs`` names the coordinates' CRS."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the column mapping {path.name}: {exc}") from None
    return parse_mapping(text, path.name)


def parse_mapping(text: str, name: str = "mapping") -> dict[str, str]:
    """A column mapping given as text (JSON or TOML); see :func:`read_mapping`."""
    try:
        doc = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError, RecursionError) as exc:
        raise InputError(f"{name}: not a JSON or TOML column mapping ({str(exc)[:200]})") from None
    if not isinstance(doc, dict):
        raise FieldMappingError(f"{name}: a column mapping is an object of field: column")
    if isinstance(doc.get("leads"), dict):
        doc = doc["leads"]
    known = (*DEFAULT_COLUMNS, "crs")
    unknown = sorted(set(doc) - set(known))
    if unknown:
        raise FieldMappingError(f"{name}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not all(isinstance(v, str) for v in doc.values()):
        raise FieldMappingError(f"{name}: each field names one column (text)")
    return dict(doc)


def _key(name: str) -> str:
    return "".join(str(name).split()).lower()


def resolve_columns(columns: list[str], mapping: dict[str, str], name: str) -> dict[str, str | None]:
    """Which of ``columns`` holds each canonical field: the mapping's, else the defaults."""
    by_key = {_key(c): c for c in columns}
    out: dict[str, str | None] = {}
    for canon, candidates in DEFAULT_COLUMNS.items():
        given = mapping.get(canon)
        if given is not None:
            if _key(given) not in by_key:
                raise FieldMappingError(
                    f"{name}: column {given!r} (mapped to {canon}) is not in the file; it has: {', '.join(columns)}"
                )
            out[canon] = by_key[_key(given)]
        else:
            out[canon] = next((by_key[_key(c)] for c in candidates if _key(c) in by_key), None)
        if out[canon] is None and canon in REQUIRED:
            raise FieldMappingError(
                f"{name}: no lead id column (tried {', '.join(candidates)}); name it in a mapping file "
                f'(--mapping, e.g. {{"lead_id": "YOUR_COLUMN"}}); the file has: {", ".join(columns) or "no columns"}'
            )
    return out


# --- reading --------------------------------------------------------------------------------


def _json_value(v):
    if v is None:
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, datetime):
        return v.date().isoformat() if v.time() == datetime.min.time() else v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, (bool, int, float, str)):
        return v
    if hasattr(v, "item"):  # numpy scalars
        return _json_value(v.item())
    return str(v)


def _text(v) -> str | None:
    v = _json_value(v)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None


def _xlsx_members_ok(path: Path, name: str, limits: LeadLimits) -> None:
    """Refuse a workbook whose parts would unpack past the limits (a zip bomb) before openpyxl
    opens it; Python's zipfile never reads past a member's declared size."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{name}: not a readable XLSX workbook") from None
    if len(members) > 1000:
        raise TooLargeError(f"{name}: {len(members):,} parts in the workbook, too many")
    total = sum(m.file_size for m in members)
    if total > limits.max_table_bytes:
        raise TooLargeError(f"{name}: the workbook unpacks to {total:,} bytes, over {limits.max_table_bytes:,}")
    for m in members:
        if m.file_size > 1 << 20 and m.file_size > limits.files.max_ratio * max(m.compress_size, 1):
            raise TooLargeError(f"{name}: part {m.filename!r} expands {m.file_size // max(m.compress_size, 1)}x")


def _is_xlsx(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False
    return "[Content_Types].xml" in names and any(n.startswith("xl/") for n in names)


def _table_rows(header: list, rows, name: str, limits: LeadLimits) -> tuple[list[str], list[dict]]:
    columns = [str(c).strip() if c is not None and str(c).strip() else f"column{i + 1}" for i, c in enumerate(header)]
    if len(columns) > limits.max_columns:
        raise TooLargeError(f"{name}: {len(columns)} columns, over the limit of {limits.max_columns}")
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise InputError(f"{name}: column {dup!r} appears twice")
    out: list[dict] = []
    for row in rows:
        values = list(row)[: len(columns)]
        if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
            continue
        if len(out) >= limits.max_rows:
            raise TooLargeError(f"{name}: over {limits.max_rows:,} rows")
        record = {}
        for c, v in zip(columns, values + [None] * (len(columns) - len(values))):
            v = _json_value(v)
            if isinstance(v, str) and len(v) > limits.max_cell_chars:
                raise TooLargeError(f"{name}: a cell of column {c!r} holds over {limits.max_cell_chars:,} characters")
            record[c] = v
        out.append(record)
    return columns, out


def _read_xlsx(path: Path, name: str, limits: LeadLimits) -> tuple[list[str], list[dict]]:
    from openpyxl import load_workbook

    _xlsx_members_ok(path, name, limits)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a broken workbook
        raise InputError(f"{name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        ws = wb.worksheets[0] if wb.worksheets else None
        if ws is None:
            raise InputError(f"{name}: the workbook has no sheet")
        try:
            it = ws.iter_rows(values_only=True, max_col=limits.max_columns + 1)
            header = next(it, None)
            if header is None:
                raise InputError(f"{name}: the first sheet is empty")
            header = list(header)
            while header and (header[-1] is None or not str(header[-1]).strip()):
                header.pop()  # rows come padded to max_col
            return _table_rows(header, it, name, limits)
        except (InputError, TooLargeError):
            raise
        except Exception as exc:
            raise InputError(f"{name}: not a readable XLSX workbook ({type(exc).__name__})") from None
    finally:
        wb.close()


def _read_csv(path: Path, name: str, limits: LeadLimits) -> tuple[list[str], list[dict]]:
    if path.stat().st_size > limits.max_table_bytes:
        raise TooLargeError(f"{name}: over {limits.max_table_bytes:,} bytes")
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise InputError(f"{name}: unsupported file; send a shapefile (zipped), GeoPackage, XLSX or CSV")
    for encoding in ("utf-8-sig", "gb18030"):  # the platform's tables are UTF-8 or GBK
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InputError(f"{name}: a CSV file must be UTF-8 or GB18030 text")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        reader = csv.reader(io.StringIO(text), dialect)
        header = next(reader, None)
        if not header:
            raise InputError(f"{name}: the CSV file is empty")
        return _table_rows(header, reader, name, limits)
    except csv.Error as exc:
        raise InputError(f"{name}: not a readable CSV file ({exc})") from None


def _read_vector(path: Path, name: str, limits: LeadLimits) -> tuple[str, str | None, list[str], list[dict], list]:
    import geopandas as gpd
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    with tempfile.TemporaryDirectory(prefix="redline-leads-") as work:
        source = sniff_vector(path, name, Path(work), limits.files)
        fmt = {"GPKG": "gpkg", "ESRI Shapefile": "shp", "KML": "kml", "FlatGeobuf": "fgb", "GeoJSON": "geojson"}[
            source.format
        ]
        if source.geojson is not None:
            doc = source.geojson
            features = geojson_features(doc)
            if not isinstance(features, list) or len(features) > limits.max_rows:
                raise InputError(f"{name}: expected at most {limits.max_rows:,} features")
            try:
                gdf = gpd.GeoDataFrame.from_features(features, crs=parse_crs(geojson_crs(doc) or "OGC:CRS84"))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise InputError(f"{name}: invalid GeoJSON features ({str(exc)[:200]})") from None
        else:
            try:
                info = pyogrio.read_info(source.path)
                if info["features"] > limits.max_rows:
                    raise TooLargeError(f"{name}: {info['features']:,} features, over the limit of {limits.max_rows:,}")
                gdf = pyogrio.read_dataframe(source.path)
            except (DataSourceError, DataLayerError) as exc:
                first = str(exc).splitlines()[0].replace(str(source.path), name)[:200]
                raise InputError(f"{name}: not a readable {source.format} dataset ({first})") from None
    if "geometry" not in gdf or gdf.crs is None:
        raise CRSError(f"{name}: the leads have no geometry or no CRS")
    crs = gdf.crs.to_string()
    lonlat = gdf.to_crs(STORAGE_CRS).geometry.values
    columns, rows = _table_rows(
        [c for c in gdf.columns if c != "geometry"],
        ([r[c] for c in gdf.columns if c != "geometry"] for _, r in gdf.iterrows()),
        name,
        limits,
    )
    return fmt, crs, columns, rows, list(lonlat)


def _parse_found(value, name: str, lead_id: str, default: date) -> date:
    v = _json_value(value)
    if v is None or (isinstance(v, str) and not v.strip()):
        return default
    text = str(v).strip().replace("/", "-").replace(".", "-")
    for candidate in (text[:10], text):
        try:
            return date.fromisoformat(candidate)
        except ValueError:
            pass
    if len(text) == 8 and text.isdigit():  # 20260615
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            pass
    raise InputError(f"{name}: lead {lead_id}: the date {v!r} is not a date like 2026-06-15")


def _activity(value) -> str:
    from . import vocab

    text = _text(value)
    if text is None:
        return "other"
    try:
        return vocab.activity(text)
    except FieldMappingError:  # the platform's own category: kept in the original columns
        return "other"


def read_leads(
    path: str | Path,
    mapping: dict[str, str] | None = None,
    *,
    name: str | None = None,
    limits: LeadLimits = LeadLimits(),
    today: date | None = None,
) -> LeadFile:
    """Read a lead file, identified by its content; every lead checked, or one clear error."""
    path = Path(path)
    name = name or path.name
    mapping = dict(mapping or {})
    if not path.is_file():
        raise MissingFileError(f"{name}: no such file")
    with open(path, "rb") as f:
        head = f.read(8)
    geoms: list | None = None
    crs: str | None
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(f"{name}: an old Excel .xls workbook; save it as .xlsx (or CSV) first")
    if head.startswith(b"PK") and _is_xlsx(path):
        fmt, crs = "xlsx", None
        columns, rows = _read_xlsx(path, name, limits)
    elif head.startswith((b"PK", b"SQLite f")) or head.lstrip(b"\xef\xbb\xbf").lstrip()[:1] in (b"<", b"{", b"["):
        fmt, crs, columns, rows, geoms = _read_vector(path, name, limits)  # checked by safeio
    elif head.startswith(b"\x00\x00\x27\x0a") or head[:3] == b"fgb":
        fmt, crs, columns, rows, geoms = _read_vector(path, name, limits)
    else:
        fmt, crs = "csv", None
        columns, rows = _read_csv(path, name, limits)
    if not rows:
        raise InputError(f"{name}: no leads in the file")
    cols = resolve_columns(columns, mapping, name)
    if geoms is None:
        if cols["lon"] is None or cols["lat"] is None:
            raise FieldMappingError(
                f"{name}: no longitude/latitude columns (tried 经度/纬度, lon/lat); name them in a mapping file"
            )
        crs = mapping.get("crs") or TABLE_CRS
        src = parse_crs(crs)
        points = []
        for i, r in enumerate(rows):
            try:
                x, y = float(r[cols["lon"]]), float(r[cols["lat"]])
            except (TypeError, ValueError):
                raise InputError(
                    f"{name}: row {i + 2}: coordinates ({r[cols['lon']]!r}, {r[cols['lat']]!r}) are not numbers"
                ) from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise InputError(f"{name}: row {i + 2}: coordinates are not finite")
            points.append(shapely.Point(x, y))
        geoms = list(reproject(points, src, STORAGE_CRS)) if not src.equals(STORAGE_CRS) else points
    today = today or date.today()
    out, seen = [], set()
    for i, (r, g) in enumerate(zip(rows, geoms)):
        lead_id = _text(r.get(cols["lead_id"]))
        if lead_id is None:
            raise InputError(f"{name}: row {i + 2}: the lead id ({cols['lead_id']}) is empty")
        if len(lead_id) > 200:
            raise InputError(f"{name}: row {i + 2}: the lead id is over 200 characters")
        if lead_id in seen:
            raise InputError(f"{name}: lead {lead_id} appears twice in the file")
        seen.add(lead_id)
        if g is None or g.is_empty:
            raise InputError(f"{name}: lead {lead_id} has no geometry")
        minx, miny, maxx, maxy = g.bounds
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not (
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        ):
            raise CRSError(f"{name}: lead {lead_id}: coordinates are not longitude/latitude; check the CRS")
        activity = _activity(r.get(cols["activity"])) if cols["activity"] else "other"
        found = _parse_found(r.get(cols["date"]) if cols["date"] else None, name, lead_id, today)
        out.append(LeadRow(lead_id, r, g, activity, found))
    return LeadFile(name, fmt, crs, columns, out)


# --- import ---------------------------------------------------------------------------------


def import_leads(
    store: Store,
    path: str | Path,
    batch: str,
    *,
    mapping: dict[str, str] | None = None,
    actor: str = "operator",
    settings: Settings = DEFAULTS,
    name: str | None = None,
    limits: LeadLimits = LeadLimits(),
    today: date | None = None,
    principal: Principal = OPERATOR,
) -> ImportResult:
    """Import a batch's lead file: new leads become flags (source national) or observations of
    the flags they overlap; leads of the batch already imported are left as they are, and leads
    outside ``principal``'s jurisdiction are refused (``result.refused``), nothing written."""
    principal.require("workflow")
    batch = (batch or "").strip()
    if not batch or len(batch) > 200:
        raise InputError("a batch id (--batch) of 1 to 200 characters is required")
    leads = read_leads(path, mapping, name=name, limits=limits, today=today)
    result = ImportResult(batch)
    recorder = Recorder(store, settings)
    with store.transaction():
        for lead in leads.rows:
            result.leads += 1
            if store.lead(batch, lead.lead_id) is not None:
                result.unchanged += 1
                continue
            problem = Problem(lead.geometry, lead.activity, lead.found_on, "national", lead.lead_id)
            what = f"{leads.name}: lead {lead.lead_id}"
            reason = _outside(store, recorder, problem, what, principal)
            if reason is not None:
                result.refused.append({"lead_id": lead.lead_id, "reason": reason})
                continue
            done = recorder.record(problem, actor, what)
            (result.new_flags if done.new else result.observed_flags).append(done.flag_id)
            if done.zone is None:
                result.outside.append(lead.lead_id)
            store.add_lead(
                {
                    "batch": batch,
                    "lead_id": lead.lead_id,
                    "flag_id": done.flag_id,
                    "source_name": leads.name[:200],
                    "source_format": leads.format,
                    "source_crs": leads.crs,
                    "attrs": lead.attrs,
                    "imported_at": now(),
                },
                lead.geometry,
            )
    return result


def _outside(store: Store, recorder: Recorder, problem: Problem, what: str, principal: Principal) -> str | None:
    """Why ``principal`` may not record ``problem`` (None: they may): the flag it observes, or
    else the admin unit the new flag would get, lies outside their jurisdiction."""
    if not principal.restricted:
        return None
    area = problem_area(problem.geometry, what)
    flag = match_flag(store, area, {})
    if flag is not None:
        return None if principal.may_see(flag) else "it observes a flag outside your jurisdiction"
    unit = recorder.judge(problem, area)[0]["admin_code"]
    if unit in principal.jurisdiction:
        return None
    return f"it lies in admin unit {unit}, outside your jurisdiction" if unit else "it lies in no admin unit of yours"


# --- verification results -------------------------------------------------------------------


def results(store: Store, batch: str, principal: Principal = OPERATOR) -> tuple[list[dict], list[str]]:
    """The batch's leads with their verification results: (rows, the original columns); only
    the leads whose flags ``principal`` may see."""
    leads = store.leads(batch)
    flags = {lead["flag_id"]: store.flag(lead["flag_id"]) for lead in leads}
    leads = [lead for lead in leads if principal.may_see(flags[lead["flag_id"]])]
    if not leads:
        raise NotFoundError(
            f"no leads were imported in batch {batch!r}" + (" inside your jurisdiction" if principal.restricted else "")
        )
    columns: list[str] = []
    for lead in leads:
        columns += [c for c in lead["attrs"] if c not in columns]
    out = []
    for lead in leads:
        flag = flags[lead["flag_id"]]
        history = store.history(lead["flag_id"])
        verdict = next(
            (
                h
                for h in reversed(history)
                if h["action"] == "status"
                and h["detail"].get("to") in FINDINGS
                and h["detail"].get("from") == "dispatched"
            ),
            None,
        )
        entry = store.rectification(lead["flag_id"]) or {}
        out.append(
            {
                "attrs": lead["attrs"],
                "geometry": lead["geometry"],
                "crs": lead["source_crs"],
                "format": lead["source_format"],
                "results": {
                    "flag_id": flag["id"],
                    "status": flag["status"],
                    "finding": FINDINGS[verdict["detail"]["to"]] if verdict else "pending",
                    "note": (verdict["detail"].get("note") if verdict else None) or None,
                    "verified": verdict["at"][:10] if verdict else None,
                    "deadline": entry.get("deadline"),
                    "closed_on": entry.get("closed_on"),
                },
            }
        )
    return out, columns


def _result_names(columns: list[str]) -> dict[str, str]:
    """Result column -> its name in the file (``_rl`` appended where an original column has it)."""
    taken = {_key(c) for c in columns}
    return {c: f"{c}_rl" if _key(c) in taken else c for c in RESULT_COLUMNS}


def export_results(store: Store, batch: str, path: str | Path, principal: Principal = OPERATOR) -> dict:
    """Write batch ``batch``'s verification results to ``path`` (.xlsx, .csv, .gpkg or .zip for a
    zipped shapefile): the original columns, then the results, one row per lead (those
    ``principal`` may see)."""
    import os

    path = Path(path)
    fmt = EXPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path.name}: write lead results as {', '.join(EXPORT_FORMATS)}")
    if not path.parent.is_dir():
        raise InputError(f"{path.parent}: folder does not exist")
    rows, columns = results(store, batch, principal)
    names = _result_names(columns)
    header = [*columns, *names.values()]
    table = [[*(r["attrs"].get(c) for c in columns), *(r["results"][c] for c in RESULT_COLUMNS)] for r in rows]
    with tempfile.TemporaryDirectory(prefix=".redline-leads-", dir=path.parent) as work:
        tmp = Path(work) / f"out{path.suffix.lower()}"
        if fmt == "xlsx":
            from openpyxl import Workbook

            wb = Workbook()
            ws = wb.active
            ws.title = "results"
            ws.append(header)
            for r in table:
                ws.append(r)
            wb.save(tmp)
        elif fmt == "csv":
            with open(tmp, "w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel reads Chinese right
                w = csv.writer(f)
                w.writerow(header)
                w.writerows(table)
        else:
            _write_vector(rows, header, table, tmp, fmt)
        os.replace(tmp, path)
    return {"path": str(path), "format": fmt, "leads": len(rows), "columns": header}


def _write_vector(rows: list[dict], header: list[str], table: list[list], tmp: Path, fmt: str) -> None:
    import shutil

    import geopandas as gpd
    import pandas as pd
    import pyogrio

    crs = next((r["crs"] for r in rows if r["crs"]), None) or TABLE_CRS
    df = pd.DataFrame([[None if v is None else str(v) if isinstance(v, (dict, list)) else v for v in r] for r in table])
    df.columns = header
    for c in header:  # mixed cells (text and numbers) are written as text
        if df[c].map(type).nunique() > 1 and df[c].notna().any():
            df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    gdf = gpd.GeoDataFrame(df, geometry=gpd.GeoSeries([r["geometry"] for r in rows], crs=STORAGE_CRS))
    gdf = gdf.to_crs(parse_crs(crs))
    if fmt == "gpkg":
        pyogrio.write_dataframe(gdf, tmp, driver="GPKG", layer="leads")
        return
    folder = tmp.parent / "shp"
    folder.mkdir()
    # dBASE field names hold 10 bytes: longer names are shortened (at a character boundary) and
    # columns.csv in the archive gives each field's full name
    short = _dbf_names(header)
    gdf = gdf.rename(columns=dict(zip(header, short)))
    pyogrio.write_dataframe(gdf, folder / "leads.shp", driver="ESRI Shapefile", layer_options={"ENCODING": "UTF-8"})
    with open(folder / "columns.csv", "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["field", "column"])
        w.writerows(zip(short, header))
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for part in sorted(folder.iterdir()):
            z.write(part, part.name)
    shutil.rmtree(folder)


def _dbf_names(header: list[str], size: int = 10) -> list[str]:
    """Field names of at most ``size`` UTF-8 bytes, cut between characters, unique."""
    out: list[str] = []
    for name in header:
        cut = name
        while len(cut.encode()) > size:
            cut = cut[:-1]
        n = 1
        candidate = cut
        while candidate.lower() in (o.lower() for o in out):
            n += 1
            tail = f"~{n}"
            base = cut
            while len((base + tail).encode()) > size:
                base = base[:-1]
            candidate = base + tail
        out.append(candidate)
    return out


__all__ = [
    "DEFAULT_COLUMNS",
    "ImportResult",
    "LeadLimits",
    "export_results",
    "import_leads",
    "parse_mapping",
    "read_leads",
    "read_mapping",
    "results",
]
