"""Change products: what one scan input is, and how its pixels become change.

Three input modes share one reader interface. :meth:`ProductReader.classify`
turns one window of the product into four arrays:

- ``key``   uint8, 0 = no change, otherwise ``ACTIVITIES.index(activity) + 1``
- ``level`` uint8, confidence rank (index into ``vocab.CONFIDENCES``)
- ``score`` float32 or None, change probability (probability mode only)
- ``valid`` bool, the ground was observed (not nodata, not cloud)
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from . import vocab
from .errors import CRSError, InputError, MissingFileError, NotARasterError, UnknownClassError
from .safeio import RASTER_DRIVER, sniff_raster

Mode = Literal["class", "probability", "transition"]

# Class and transition tables become one uint8 lookup per code (or code pair), so
# classifying a pixel is a single table read: activity key in bits 0-3, confidence
# level in bits 4-5, "observed" in bit 6, "code not in the table" in bit 7.
KEY_MASK, LEVEL_SHIFT, OBSERVED, UNKNOWN_BIT = 0x0F, 4, 0x40, 0x80
GDAL_CACHEMAX_MB = 64
TAG_PREFIX = "REDLINE_"


class ChangeProduct(BaseModel):
    """One scan input with its provenance."""

    model_config = ConfigDict(frozen=True)

    product_id: str
    mode: Mode = "class"
    path: Path = Field(description="the change raster, or the 'after' land-cover raster")
    before_path: Path | None = None
    class_table: Path | None = None
    transition_table: Path | None = None
    thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)
    activity: str = "other"  # what a probability raster detects
    scale: float | None = None  # integer probability rasters: value / scale = probability
    sensor: str | None = None
    acquired_before: date | None = None
    acquired_after: date

    @field_validator("thresholds", mode="before")
    @classmethod
    def _parse_thresholds(cls, v):
        """``"0.5,0.7,0.9"`` (CLI option, raster tag, STAC property) or one number, as a tuple."""
        if isinstance(v, str):
            try:
                return tuple(float(t) for t in v.split(","))
            except ValueError:
                raise ValueError(f"thresholds must be numbers separated by commas, not {v!r}") from None
        if isinstance(v, (int, float)):
            return (v,)
        return v

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        levels = f"(one per confidence level {', '.join(vocab.CONFIDENCES)})"
        if not 1 <= len(v) <= len(vocab.CONFIDENCES):
            raise ValueError(f"thresholds must be 1 to {len(vocab.CONFIDENCES)} values {levels}")
        if not all(math.isfinite(t) and 0 < t <= 1 for t in v):
            raise ValueError(
                "thresholds must be finite probabilities in (0, 1] "
                "(an integer raster's values are divided by its scale first)"
            )
        if any(a >= b for a, b in zip(v, v[1:])):
            raise ValueError(f"thresholds must be strictly ascending values {levels}")
        return v

    @field_validator("activity")
    @classmethod
    def _activity(cls, v: str) -> str:
        return vocab.activity(v)

    @property
    def paths(self) -> list[Path]:
        return [p for p in (self.before_path, self.path) if p is not None]

    def checksum(self) -> str:
        """Identity of the scan of this product: the scan ledger keys on it.

        It covers everything that changes the result: the mode, the content of each raster
        in its role (before / after), and per mode the content of the class or transition
        table, or the thresholds, activity and scale of a probability raster. Names, dates
        and sensor describe the product but do not change its patches.
        """
        h = hashlib.sha256(b"redline-scan-v2\n")

        def put(name: str, value) -> None:
            h.update(f"{name}={value}\n".encode())

        put("mode", self.mode)
        put("before", _file_digest(self.before_path) if self.before_path is not None else None)
        put("after", _file_digest(self.path))
        if self.mode == "class":
            put("class_table", _file_digest(self.class_table) if self.class_table is not None else None)
        elif self.mode == "transition":
            put("transition_table", _file_digest(self.transition_table) if self.transition_table is not None else None)
        else:
            put("thresholds", ",".join(repr(float(t)) for t in self.thresholds))
            put("activity", self.activity)
            put("scale", None if self.scale is None else repr(float(self.scale)))
        return h.hexdigest()

    def provenance(self) -> dict:
        return {
            "product_id": self.product_id,
            "mode": self.mode,
            "sensor": self.sensor,
            "acquired_before": self.acquired_before.isoformat() if self.acquired_before else None,
            "acquired_after": self.acquired_after.isoformat(),
            "files": [str(p) for p in self.paths],
        }


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _raster_tags(path: Path) -> dict:
    sniff_raster(path)
    try:
        with rasterio.open(path, driver=RASTER_DRIVER) as ds:
            tags = ds.tags()
    except RasterioIOError as exc:
        raise NotARasterError(f"{path}: not a readable raster ({str(exc).splitlines()[0][:200]})") from None
    return {k[len(TAG_PREFIX) :].lower(): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


def resolve_product(path: str | Path, **overrides) -> ChangeProduct:
    """Describe a product from a raster (+ sidecar JSON + tags) or a manifest JSON.

    Precedence, lowest first: raster tags ``REDLINE_*``, sidecar ``<name>.json``,
    explicit ``overrides`` (CLI options). Relative paths in a JSON are relative to it.
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(f"{path}: no such file")
    meta: dict = {}
    if path.suffix.lower() == ".json":
        manifest, base = path, path.parent
    else:
        meta.update(_raster_tags(path))
        meta["path"] = path
        manifest, base = path.with_suffix(".json"), path.parent
    if manifest.exists():
        try:
            doc = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{manifest}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise InputError(f"{manifest}: expected a JSON object")
        if "after" in doc:
            doc["path"] = doc.pop("after")
        if "before" in doc:
            doc["before_path"] = doc.pop("before")
        for key in ("path", "before_path", "class_table", "transition_table"):
            if doc.get(key):
                doc[key] = (base / doc[key]) if not Path(doc[key]).is_absolute() else Path(doc[key])
        meta.update(doc)
    meta.update({k: v for k, v in overrides.items() if v is not None})
    meta.setdefault("product_id", Path(meta.get("path", path)).stem)
    try:
        product = ChangeProduct.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "product"
        hint = " (give it as a CLI option, a sidecar JSON or a REDLINE_* raster tag)"
        raise InputError(f"{path}: {field}: {err['msg']}{hint if err['type'] == 'missing' else ''}") from None
    return require_inputs(
        product, str(path), f"named by {path}", "a class table (--classes)", "a before raster and a transition table"
    )


def require_inputs(
    product: ChangeProduct, where: str, named_by: str, class_inputs: str, transition_inputs: str
) -> ChangeProduct:
    """Every file a product names exists, and its mode has the tables it needs; messages say
    where the product came from (``where``) in the words of that source."""
    for p in product.paths + [t for t in (product.class_table, product.transition_table) if t]:
        if not Path(p).exists():
            raise MissingFileError(f"{p}: no such file ({named_by})")
    if product.mode == "class" and product.class_table is None:
        raise InputError(f"{where}: a class product needs {class_inputs}")
    if product.mode == "transition" and (product.before_path is None or product.transition_table is None):
        raise InputError(f"{where}: a transition product needs {transition_inputs}")
    return product


# --- tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassEntry:
    activity: str  # an activity, or vocab.NO_CHANGE / vocab.NO_OBSERVATION
    confidence: str = "nominal"


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = []
            for r in reader:
                if None in r:  # more values than the header has columns
                    assert reader.fieldnames is not None  # read with the first row
                    raise InputError(
                        f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(r[None])} values, "
                        f"but the header names {len(reader.fieldnames)} columns"
                    )
                if any((v or "").strip() for v in r.values()):
                    rows.append(r)
            header = [h.strip().lower() for h in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read table ({exc})") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: table lacks column(s) {', '.join(missing)}; has {', '.join(header)}")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in rows]


def _code(text: str, path: Path, line: int) -> int:
    try:
        code = int(text)
    except ValueError:
        raise InputError(f"{path}:{line}: class code {text!r} is not an integer") from None
    if not 0 <= code <= 65535:
        raise InputError(f"{path}:{line}: class code {code} outside 0..65535")
    return code


def _confidence(text: str, path: Path, line: int) -> str:
    conf = (text or "nominal").lower()
    if conf not in vocab.CONFIDENCES:
        raise InputError(f"{path}:{line}: confidence {text!r} not one of {', '.join(vocab.CONFIDENCES)}")
    return conf


def _activity(text: str, path: Path, line: int) -> str:
    try:
        return vocab.activity(text, allow_pseudo=True)
    except InputError as exc:
        raise InputError(f"{path}:{line}: {exc}") from None


def read_class_table(path: Path) -> dict[int, ClassEntry]:
    """CSV ``code,activity[,confidence]``; activity may be ``none`` or ``no_observation``."""
    table: dict[int, ClassEntry] = {}
    for i, row in enumerate(_read_csv(path, ("code", "activity")), start=2):
        code = _code(row["code"], path, i)
        if code in table:
            raise InputError(f"{path}:{i}: class code {code} listed twice")
        table[code] = ClassEntry(_activity(row["activity"], path, i), _confidence(row.get("confidence", ""), path, i))
    if not table:
        raise InputError(f"{path}: class table is empty")
    return table


def read_transition_table(path: Path) -> dict[tuple[int, int], ClassEntry]:
    """CSV ``before,after,activity[,confidence]``; codes may be joined with ``|``.

    Pairs not listed are "no change". ``activity = no_observation`` marks codes such
    as clouds (use ``*`` for "any code" on the other side).
    """
    table: dict[tuple[int, int], ClassEntry] = {}
    for i, row in enumerate(_read_csv(path, ("before", "after", "activity")), start=2):
        entry = ClassEntry(_activity(row["activity"], path, i), _confidence(row.get("confidence", ""), path, i))
        sides = []
        for side in ("before", "after"):
            text = row[side]
            sides.append([-1] if text == "*" else [_code(c.strip(), path, i) for c in text.split("|")])
        for b in sides[0]:
            for a in sides[1]:
                table[(b, a)] = entry
    if not table:
        raise InputError(f"{path}: transition table is empty")
    return table


# --- readers --------------------------------------------------------------------------


def open_raster(path: Path):
    """Open a user-supplied raster with a clear error for anything unusable. Only GeoTIFF
    (by content, read by the GTiff driver alone): a VRT named ``.tif`` would read any file
    or URL it names."""
    sniff_raster(path)
    try:
        ds = rasterio.open(path, driver=RASTER_DRIVER)
    except RasterioIOError as exc:
        raise NotARasterError(f"{path}: not a readable raster ({str(exc).splitlines()[0]})") from None
    if ds.crs is None:
        ds.close()
        raise CRSError(f"{path}: raster has no CRS; assign one (e.g. gdal_edit.py -a_srs EPSG:32649) and retry")
    if ds.transform.b != 0 or ds.transform.d != 0:
        ds.close()
        raise InputError(f"{path}: rotated rasters are not supported; warp it to a north-up grid first")
    return ds


def _pack(entry: ClassEntry) -> int:
    if entry.activity == vocab.NO_OBSERVATION:
        return 0
    key = vocab.ACTIVITIES.index(entry.activity) + 1 if entry.activity in vocab.ACTIVITIES else 0
    return key | (vocab.CONFIDENCES.index(entry.confidence) << LEVEL_SHIFT) | OBSERVED


def _is_code(nodata, size: int) -> bool:
    return nodata is not None and not np.isnan(nodata) and float(nodata).is_integer() and 0 <= nodata < size


def _uniform(a: np.ndarray) -> bool:
    """Whether every pixel of ``a`` holds the same value (bitwise), in one pass over 8-byte words."""
    flat = a.reshape(-1)
    if flat.size == 0:
        return False
    bits = np.ascontiguousarray(flat).view(f"u{flat.itemsize}")  # bitwise: NaN equals NaN
    if bits.nbytes % 8 == 0 and 8 % bits.itemsize == 0:  # 8 pixels of a byte raster per comparison
        word = np.full(8 // bits.itemsize, bits[0]).astype(bits.dtype).view(np.uint64)[0]
        return bool((bits.view(np.uint64) == word).all())
    return bool((bits == bits[0]).all())


class ProductReader:
    """Reads windows of a product and classifies them. Use as a context manager."""

    def __init__(self, product: ChangeProduct, cachemax_mb: int = GDAL_CACHEMAX_MB):
        self.product = product
        # Every block is read exactly once, so GDAL's block cache (5 % of RAM by default)
        # would only hold dead blocks: a small one keeps memory flat and is faster.
        self._env = rasterio.Env(GDAL_CACHEMAX=cachemax_mb)
        self._env.__enter__()
        self.ds = self.before = None
        try:
            self.ds = open_raster(product.path)
            self.before = open_raster(product.before_path) if product.before_path else None
            self._setup()
            # the grid, kept after close() for footprints and reports
            ds = self.ds
            self.crs, self.transform, self.bounds = ds.crs, ds.transform, ds.bounds
            self.shape = (ds.height, ds.width)
            self.block_shape = ds.block_shapes[0]
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for ds in (self.ds, self.before):
            if ds is not None:
                ds.close()
        self.ds = self.before = None
        if self._env is not None:
            self._env.__exit__(None, None, None)
            self._env = None

    def _setup(self):
        p, ds = self.product, self.ds
        self.nodata = ds.nodata
        if p.mode == "class":
            if ds.dtypes[0] not in ("uint8", "uint16"):
                raise InputError(f"{p.path}: a class raster must hold uint8 or uint16 codes, not {ds.dtypes[0]}")
            size = 256 if np.dtype(ds.dtypes[0]).itemsize == 1 else 65536
            self._lut = np.full(size, UNKNOWN_BIT, dtype=np.uint8)
            for code, e in read_class_table(p.class_table).items():
                if code < size:
                    self._lut[code] = _pack(e)
            if _is_code(self.nodata, size):
                self._lut[int(self.nodata)] = 0  # not observed, not unknown
        elif p.mode == "probability":
            dt = np.dtype(ds.dtypes[0])
            self._scale = p.scale or (1.0 if np.issubdtype(dt, np.floating) else 100.0)
            self._thresholds = np.asarray(p.thresholds, dtype=np.float32)
            self._activity_key = vocab.ACTIVITIES.index(p.activity) + 1
        else:  # transition
            b = self.before
            if (b.width, b.height, b.transform, b.crs) != (ds.width, ds.height, ds.transform, ds.crs):
                raise InputError(
                    f"{p.before_path} and {p.path}: before/after rasters must share one grid "
                    "(same CRS, transform and size); warp one onto the other first"
                )
            for d in (b, ds):
                if np.dtype(d.dtypes[0]) != np.uint8:
                    raise InputError(f"{d.name}: land-cover rasters must be uint8 class codes, not {d.dtypes[0]}")
            # one table over (before << 8 | after); pairs not listed are observed, unchanged
            lut = np.full((256, 256), OBSERVED, dtype=np.uint8)
            table = read_transition_table(p.transition_table)
            for (bc, ac), e in sorted(table.items(), key=lambda kv: -1 in kv[0], reverse=True):  # wildcards first
                if max(bc, ac) > 255:
                    continue
                lut[slice(None) if bc == -1 else bc, slice(None) if ac == -1 else ac] = _pack(e)
            if _is_code(b.nodata, 256):
                lut[int(b.nodata), :] = 0
            if _is_code(ds.nodata, 256):
                lut[:, int(ds.nodata)] = 0
            self._lut = lut.ravel()

    def _valid(self, data: np.ndarray, nodata) -> np.ndarray:
        if nodata is None:
            return np.ones(data.shape, dtype=bool)
        if np.isnan(nodata):
            return ~np.isnan(data)
        return data != nodata

    @staticmethod
    def _read(ds, window: Window) -> np.ndarray:
        try:
            return ds.read(1, window=window)
        except RasterioIOError as exc:
            raise NotARasterError(
                f"{ds.name}: read failed at rows {window.row_off}..{window.row_off + window.height}, "
                f"columns {window.col_off}..{window.col_off + window.width}; the file is corrupt or truncated "
                f"({str(exc).splitlines()[0]})"
            ) from None

    def classify(self, window: Window):
        """``(key, level, score, valid)`` of a window: activity key (0 none), confidence level,
        probability (or None) and observed-ground mask. Arrays may be read-only."""
        data = self._read(self.ds, window)
        before = self._read(self.before, window) if self.before is not None else None
        if _uniform(data) and (before is None or _uniform(before)):
            # one value throughout (open sea, a scene's no-data margin): most windows of a
            # large scene; classify one pixel and spread it instead of every pixel
            one = self._classify(data[:1, :1], None if before is None else before[:1, :1])
            return tuple(None if a is None else np.broadcast_to(a, data.shape) for a in one)
        return self._classify(data, before)

    def _classify(self, data: np.ndarray, before: np.ndarray | None):
        p = self.product
        if p.mode == "probability":
            prob = data.astype(np.float32) / np.float32(self._scale)
            valid = self._valid(data, self.nodata) & np.isfinite(prob)
            prob = np.where(valid, prob, 0)
            passed = (prob[..., None] >= self._thresholds).sum(axis=-1).astype(np.uint8)
            key = np.where(passed > 0, self._activity_key, 0).astype(np.uint8)
            level = np.maximum(passed, 1) - 1
            return key, level, prob, valid
        if p.mode == "class":
            packed = self._lut.take(data)
            if packed.max() & UNKNOWN_BIT:  # the top bit: one reduction finds any unknown code
                codes = sorted(int(c) for c in np.unique(data[(packed & UNKNOWN_BIT) != 0]))[:10]
                raise UnknownClassError(
                    f"{p.path}: class code(s) {', '.join(map(str, codes))} are not in {p.class_table}"
                )
        else:
            assert before is not None  # a pair product always reads its before raster
            pair = before.astype(np.uint16)
            pair <<= 8
            pair |= data
            packed = self._lut.take(pair)  # in place and take(): about a third faster than lut[b << 8 | a]
        return packed & KEY_MASK, (packed >> LEVEL_SHIFT) & 3, None, (packed & OBSERVED) != 0

    def read_raw(self, window: Window):
        """Plain read of the same window(s), for the raw-read baseline in benchmarks."""
        out = self._read(self.ds, window)
        if self.before is not None:
            self._read(self.before, window)
        return out
