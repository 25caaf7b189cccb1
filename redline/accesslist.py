"""Access lists (生态环境准入清单) of environmental control units, read from CSV or XLSX.

One row per entry: the unit code (环境管控单元编码, the key of the control unit layer), the
activity (any word :func:`redline.vocab.activity` knows, or 全部/``*`` for every activity), the
decision (禁止 prohibited / 限制 restricted, i.e. needs approval / 允许 allowed) and, for a
restricted activity, the condition under which it may be approved. Column names are found by
their usual Chinese or English headers, or mapped like a layer's fields (``unit_code=编码``).

A user's file is read with bounded effort: size, rows and cell length are capped, an XLSX is
checked as a zip (members, unpacked size, ratio) before openpyxl opens it read-only, and only
cell values are read (no formulas evaluated, no links followed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import vocab
from .errors import FieldMappingError, InputError, MissingFileError, TooLargeError


@dataclass(frozen=True)
class AccessLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_rows: int = 100_000
    max_cell_chars: int = 4_000
    max_members: int = 200  # an XLSX is a zip
    max_unpacked_bytes: int = 200 * 1024 * 1024
    max_unpack_ratio: int = 200


# canonical column -> (required, header words that name it)
COLUMNS: dict[str, tuple[bool, tuple[str, ...]]] = {
    "unit_code": (
        True,
        ("unit_code", "code", "unit", "环境管控单元编码", "管控单元编码", "单元编码", "编码", "单元代码"),
    ),
    "activity": (True, ("activity", "活动", "活动类型", "行业", "行业类别", "项目类型", "产业")),
    "decision": (
        True,
        ("decision", "list", "type", "准入类别", "清单类型", "管控类别", "准入要求", "类别", "管控类型"),
    ),
    "condition": (False, ("condition", "conditions", "条件", "准入条件", "管控要求", "要求", "备注")),
}


@dataclass
class AccessEntry:
    unit_code: str
    activity: str  # canonical, or vocab.ANY_ACTIVITY
    activity_text: str
    decision: str  # vocab.ACCESS_DECISIONS
    condition: str | None
    source_row: int


@dataclass
class AccessListReport:
    source: str
    sha256: str
    format: str
    rows_read: int
    entries: list[AccessEntry]
    field_map: dict = field(default_factory=dict)
    kind: str = vocab.ACCESS_LIST

    def summary(self) -> dict:
        by = {d: sum(e.decision == d for e in self.entries) for d in vocab.ACCESS_DECISIONS}
        return {
            "kind": self.kind,
            "source": self.source,
            "format": self.format,
            "rows_read": self.rows_read,
            "entries": len(self.entries),
            "units": len({e.unit_code for e in self.entries}),
            "by_decision": by,
        }


def _cell(value, limits: AccessLimits, row: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > limits.max_cell_chars:
        raise TooLargeError(
            f"row {row}: a cell of {len(text):,} characters, over the limit of {limits.max_cell_chars:,}"
        )
    return text or None


def _decode(data: bytes, path: Path) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Chinese offices' spreadsheets save CSV as GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: a CSV file must be UTF-8 or GB18030 text")


def _csv_rows(data: bytes, path: Path, limits: AccessLimits):
    if b"\x00" in data[:4096]:
        raise InputError(f"{path}: not a CSV or XLSX table")
    text = _decode(data, path)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        for n, row in enumerate(csv.reader(io.StringIO(text), dialect), start=1):
            if n > limits.max_rows + 1:
                raise TooLargeError(f"{path}: more than {limits.max_rows:,} rows")
            yield n, row
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV table ({exc})") from None


def _xlsx_rows(path: Path, sheet: str | None, limits: AccessLimits):
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            if len(members) > limits.max_members:
                raise TooLargeError(
                    f"{path}: {len(members)} parts in the workbook, over the limit of {limits.max_members}"
                )
            unpacked = sum(m.file_size for m in members)
            packed = max(sum(m.compress_size for m in members), 1)
            if unpacked > limits.max_unpacked_bytes or unpacked / packed > limits.max_unpack_ratio:
                raise TooLargeError(f"{path}: the workbook unpacks to {unpacked:,} bytes; refused")
            if "xl/workbook.xml" not in {m.filename for m in members}:
                raise InputError(f"{path}: not an XLSX workbook")
    except zipfile.BadZipFile:
        raise InputError(f"{path}: not a readable XLSX workbook") from None
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on a broken workbook
        raise InputError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise InputError(f"{path}: no sheet {sheet!r}; it has {', '.join(wb.sheetnames)}")
        if not wb.worksheets:
            raise InputError(f"{path}: the workbook has no sheet")
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows, n = ws.iter_rows(values_only=True), 0  # a sheet is parsed as it is read
        while True:
            try:
                row = next(rows)
            except StopIteration:
                break
            except Exception as exc:  # a broken or hostile sheet (defusedxml refuses entities)
                raise InputError(f"{path}: not a readable XLSX sheet ({type(exc).__name__})") from None
            n += 1
            if n > limits.max_rows + 1:
                raise TooLargeError(f"{path}: more than {limits.max_rows:,} rows")
            yield n, list(row)
    finally:
        wb.close()


def _columns(header: list[str | None], mapping: dict[str, str], path: Path) -> dict[str, int | None]:
    unknown = set(mapping) - set(COLUMNS)
    if unknown:
        raise FieldMappingError(
            f"unknown access list field(s) {', '.join(sorted(unknown))}; known: {', '.join(COLUMNS)}"
        )
    names = [(h or "").strip() for h in header]
    lower = {h.lower(): i for i, h in reversed(list(enumerate(names))) if h}
    out: dict[str, int | None] = {}
    for canon, (required, words) in COLUMNS.items():
        if canon in mapping:
            i = lower.get(mapping[canon].strip().lower())
            if i is None:
                header_text = ", ".join(n for n in names if n)
                raise FieldMappingError(
                    f"{path}: column {mapping[canon]!r} (mapped to {canon}) is not in the header: {header_text}"
                )
        else:
            i = next((lower[w.lower()] for w in words if w.lower() in lower), None)
        if i is None and required:
            raise FieldMappingError(
                f"{path}: no {canon} column (e.g. {' / '.join(words[:4])}); map it with --field {canon}=YOUR_COLUMN"
                f" (the header has: {', '.join(n for n in names if n) or 'nothing'})"
            )
        out[canon] = i
    return out


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith((b"\xd0\xcf\x11\xe0",)):
        raise InputError(f"{path}: an old .xls workbook; save it as .xlsx or CSV")
    return "csv"


def read_access_list(
    path: str | Path,
    *,
    mapping: dict[str, str] | None = None,
    sheet: str | None = None,
    limits: AccessLimits = AccessLimits(),
) -> AccessListReport:
    """Read an access list table (CSV or XLSX, told apart by content) into entries."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise TooLargeError(f"{path}: {size:,} bytes, over the limit of {limits.max_bytes:,} for an access list")
    data = path.read_bytes()
    fmt = _sniff(path)
    rows = _xlsx_rows(path, sheet, limits) if fmt == "xlsx" else _csv_rows(data, path, limits)
    cols: dict[str, int | None] | None = None
    entries: list[AccessEntry] = []
    read = 0
    for n, raw in rows:
        values = [_cell(v, limits, n) for v in raw]
        if not any(values):
            continue
        if cols is None:  # the first row with anything in it is the header
            cols = _columns(values, mapping or {}, path)
            continue
        read += 1
        picked = {c: (values[i] if i is not None and i < len(values) else None) for c, i in cols.items()}
        code, act, decision = picked["unit_code"], picked["activity"], picked["decision"]
        if code is None or act is None or decision is None:
            missing = [c for c, v in (("unit_code", code), ("activity", act), ("decision", decision)) if v is None]
            raise FieldMappingError(f"{path}: row {n}: {', '.join(missing)} is empty")
        try:
            canon_act, canon_dec = vocab.access_activity(act), vocab.access_decision(decision)
        except FieldMappingError as exc:
            raise FieldMappingError(f"{path}: row {n}: {exc}") from None
        condition = picked["condition"]
        if canon_dec == "restricted" and condition is None:
            raise FieldMappingError(f"{path}: row {n}: a restricted activity needs its condition (条件)")
        entries.append(AccessEntry(code, canon_act, act, canon_dec, condition, n))
    if cols is None or not entries:
        raise InputError(f"{path}: the access list has no entries")
    return AccessListReport(
        str(path),
        hashlib.sha256(data).hexdigest(),
        fmt,
        read,
        entries,
        field_map={k: v for k, v in (mapping or {}).items()},
    )


def decide(entries: list[dict], activity: str) -> dict | None:
    """The entry that decides ``activity`` among a unit's ``entries`` (store rows): entries
    naming the activity itself before those for every activity (the specific rule prevails);
    among those the strictest (prohibited, then restricted, then allowed), then the first row."""
    for wanted in (activity, vocab.ANY_ACTIVITY):
        hits = [e for e in entries if e["activity"] == wanted]
        if hits:
            return min(hits, key=lambda e: (vocab.ACCESS_DECISIONS.index(e["decision"]), e["source_row"]))
    return None
