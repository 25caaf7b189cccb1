"""Field evidence (photos, documents) attached to flags, stored safely.

File names on disk are generated (``<flag>/<uuid>.<ext>``), never taken from the
user; the content type is decided by the file's magic bytes, not by the client's
claim; size is capped while streaming, so an oversized upload never fills the disk.

A file and its row appear together, whatever kills the process and when:

1. the upload is written to ``<flag>/.upload-<uuid>.<ext>``, held under an exclusive
   ``flock`` for as long as the upload is in progress, and fsynced;
2. the row (and its audit entry) is committed, naming ``<uuid>.<ext>``;
3. the temp file is renamed to ``<uuid>.<ext>``.

A process killed before 2 leaves an unlocked temp file with no row: :func:`recover`
deletes it. Killed between 2 and 3, it leaves an unlocked temp file whose row exists:
:func:`recover` finishes the rename. A temp file still locked belongs to an upload in
progress and is left alone; a ``<uuid>.<ext>`` file with no row cannot be made by this
code and is removed as an orphan. Recovery runs for a flag's folder before each upload
to it and when a download finds its file missing; ``redline evidence recover`` runs it
over the whole folder (at start-up, or from cron).

Photos (JPEG, HEIC) give their EXIF GPS position and time (:func:`photo_position`): a photo's
position is the point given with the upload, else its EXIF one; the geodesic distance from it
to the flag is stored, with a warning when it is farther than ``max_distance_m`` (the setting
``evidence_max_distance_m``, 200 m by default), or when the EXIF could not be read. Pixels are
never decoded for this: only the metadata is read; a photo of absurd dimensions (a
decompression bomb, refused by Pillow), a truncated or a bogus one is stored without a position
and with a warning.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import re
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import shapely

from . import geo
from .clock import now
from .errors import InputError, NotFoundError, TooLargeError
from .faults import checkpoint
from .store import Store

# magic bytes -> (content type, extension)
SIGNATURES = (
    (b"\xff\xd8\xff", ("image/jpeg", "jpg")),
    (b"\x89PNG\r\n\x1a\n", ("image/png", "png")),
    (b"%PDF-", ("application/pdf", "pdf")),
)
# HEIF photos (phones): an ISO BMFF ``ftyp`` box with one of these major brands
HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
PHOTO_TYPES = ("image/jpeg", "image/heic")  # the ones whose EXIF position is read
TEMP_PREFIX = ".upload-"
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(?:jpg|png|pdf|heic)$")
# a camera's local time without an offset is taken for China Standard Time (the country's one zone)
LOCAL_TIME = timezone(timedelta(hours=8))


def sniff(head: bytes) -> tuple[str, str]:
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
        return ("image/heic", "heic")
    raise InputError("unsupported file type: evidence must be a JPEG or PNG (or HEIC) photo, or a PDF document")


# --- EXIF position and time ---------------------------------------------------------------

GPS_IFD = 0x8825
EXIF_IFD = 0x8769
DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL = 36867, 36881


@dataclass
class PhotoPosition:
    """What a photo's EXIF says: where (lon/lat, WGS 84) and when (ISO 8601, UTC offset kept)."""

    lon: float | None = None
    lat: float | None = None
    taken_at: str | None = None
    problem: str | None = None  # why the EXIF could not be read, when it could not


def _degrees(dms, ref) -> float:
    d, m, s = (float(x) for x in dms)
    value = d + m / 60 + s / 3600
    if not all(math.isfinite(x) and x >= 0 for x in (d, m, s)) or m >= 60 or s >= 60:
        raise ValueError(f"bogus GPS coordinate {dms!r}")
    ref = ref.decode("ascii", "replace") if isinstance(ref, bytes) else str(ref or "")
    return -value if ref.strip().upper() in ("S", "W") else value


def _gps_time(gps: dict) -> str | None:
    day, hms = gps.get(29), gps.get(7)  # GPSDateStamp 'YYYY:MM:DD', GPSTimeStamp (h, m, s) in UTC
    if not day or not hms:
        return None
    h, m, s = (float(x) for x in hms)
    base = datetime.strptime(str(day).strip(), "%Y:%m:%d").replace(tzinfo=UTC)
    return (base + timedelta(hours=h, minutes=m, seconds=int(s))).isoformat(timespec="seconds")


def _original_time(exif_ifd: dict) -> str | None:
    text = exif_ifd.get(DATETIME_ORIGINAL)
    if not text:
        return None
    taken = datetime.strptime(str(text).strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
    offset = str(exif_ifd.get(OFFSET_TIME_ORIGINAL) or "").strip().rstrip("\x00")
    zone = datetime.strptime(offset, "%z").tzinfo if offset else LOCAL_TIME
    return taken.replace(tzinfo=zone).isoformat(timespec="seconds")


def photo_position(path: Path) -> PhotoPosition:
    """The EXIF GPS position and time of a JPEG or HEIC photo; empty when it has none, with
    ``problem`` set when its metadata cannot be read (truncated, bogus). Never raises."""
    from PIL import Image

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - a dependency; HEIC photos then keep no position
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's size and EXIF warnings: pixels are never decoded
            with Image.open(path) as img:  # a decompression bomb is refused here (DecompressionBombError)
                exif = img.getexif()
                gps = dict(exif.get_ifd(GPS_IFD))
                exif_ifd = dict(exif.get_ifd(EXIF_IFD))
    except Exception as exc:  # noqa: BLE001 - a hostile file: Pillow raises many kinds
        return PhotoPosition(problem=f"photo metadata unreadable ({type(exc).__name__})")
    out = PhotoPosition()
    try:
        out.taken_at = _gps_time(gps) or _original_time(exif_ifd)
    except Exception:  # noqa: BLE001 - bogus dates: no time
        out.problem = "EXIF date unreadable"
    if 2 in gps and 4 in gps:
        try:
            lat, lon = _degrees(gps[2], gps.get(1)), _degrees(gps[4], gps.get(3))
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError("outside longitude/latitude")
            out.lon, out.lat = round(lon, 7), round(lat, 7)
        except Exception:  # noqa: BLE001
            out.problem = "EXIF GPS position unreadable"
    return out


def locate(
    flag_geometry, lon: float | None, lat: float | None, photo: PhotoPosition | None, max_distance_m: float
) -> dict:
    """The evidence's position fields: the point given, else the photo's EXIF one; its
    geodesic distance to the flag; and a warning when it is farther than ``max_distance_m``."""
    source = "given" if lon is not None else "exif" if photo is not None and photo.lon is not None else None
    if source == "exif" and photo is not None:
        lon, lat = photo.lon, photo.lat
    warn = []
    distance = None
    if source is not None and flag_geometry is not None and lon is not None and lat is not None:
        distance = round(geo.distance_m(shapely.Point(lon, lat), flag_geometry), 1)
        if distance > max_distance_m:
            warn.append(f"taken {distance:,.0f} m from the flag (more than {max_distance_m:,.0f} m)")
    if photo is not None and photo.problem:
        warn.append(photo.problem)
    return {
        "lon": lon,
        "lat": lat,
        "taken_at": photo.taken_at if photo is not None else None,
        "position_source": source,
        "distance_m": distance,
        "warning": "; ".join(warn) or None,
    }


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _locked_temp(folder: Path, stored: str) -> tuple[int, Path]:
    """Create ``.upload-<stored>`` and hold an exclusive lock on it. Between creating and
    locking, a recovery may take the unlocked file for a dead upload's and delete it: then
    the path no longer names our file, and we start again with another name."""
    for _ in range(5):
        tmp = folder / f"{TEMP_PREFIX}{stored}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)
        stored = f"{uuid.uuid4().hex}.{stored.rsplit('.', 1)[1]}"
    raise OSError(f"cannot create an upload file in {folder}")


def save_evidence(
    store: Store,
    root: Path,
    flag_id: int,
    stream: BinaryIO,
    *,
    original_name: str | None,
    actor: str,
    lon: float | None = None,
    lat: float | None = None,
    note: str | None = None,
    max_bytes: int = 20 * 1024 * 1024,
    max_distance_m: float = 200.0,
) -> dict:
    flag = store.flag(flag_id)  # 404 before reading the body
    if (lon is None) != (lat is None):
        raise InputError("give both lon and lat for the GPS point, or neither")
    if lon is not None and lat is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"GPS point ({lon}, {lat}) is not a longitude/latitude")
    head = stream.read(16)
    content_type, ext = sniff(head)  # before anything touches the disk
    folder = Path(root) / str(int(flag_id))
    folder.mkdir(parents=True, exist_ok=True)
    recover(store, root, flag_id)  # what a killed upload to this flag left behind
    digest, size = hashlib.sha256(), 0
    fd, tmp = _locked_temp(folder, f"{uuid.uuid4().hex}.{ext}")
    stored = tmp.name[len(TEMP_PREFIX) :]
    committed = False
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLargeError(f"evidence file exceeds the limit of {max_bytes:,} bytes")
                digest.update(chunk)
                out.write(chunk)
                checkpoint("evidence-writing")
                chunk = stream.read(1 << 16)
            out.flush()
            os.fsync(out.fileno())  # the bytes are on disk before a row names them
        checkpoint("evidence-written")
        photo = photo_position(tmp) if content_type in PHOTO_TYPES else None
        position = locate(flag.get("geometry"), lon, lat, photo, max_distance_m)
        record = {
            "flag_id": flag_id,
            "stored_name": stored,
            "original_name": (original_name or "")[:200] or None,
            "content_type": content_type,
            "size": size,
            "sha256": digest.hexdigest(),
            "lon": position["lon"],
            "lat": position["lat"],
            "note": note,
            "actor": actor,
            "at": now(),
            "taken_at": position["taken_at"],
            "position_source": position["position_source"],
            "distance_m": position["distance_m"],
            "warning": position["warning"],
        }
        with store.transaction():  # the row and its audit entry: both or neither
            record["id"] = store.add_evidence(record)
            store.audit(
                flag_id, actor, "evidence", {"evidence_id": record["id"], "content_type": content_type, "note": note}
            )
            checkpoint("evidence-in-transaction")
        committed = True
        checkpoint("evidence-committed")
        os.replace(tmp, folder / stored)
        _fsync_dir(folder)
    finally:
        if not committed:
            tmp.unlink(missing_ok=True)
        os.close(fd)  # releases the lock; a temp file left now is recover()'s to finish
    return record


@dataclass
class Recovery:
    """What :func:`recover` did (or, with ``dry_run``, would do): paths relative to the root."""

    renamed: list[str] = field(default_factory=list)  # committed uploads whose rename was cut short
    removed_temp: list[str] = field(default_factory=list)  # uploads killed before their row
    removed_orphans: list[str] = field(default_factory=list)  # stored files that no row names
    in_progress: list[str] = field(default_factory=list)  # temp files still locked by a live upload
    missing: list[str] = field(default_factory=list)  # rows whose file is not on disk (nothing to do)

    def summary(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items()}


def recover(store: Store, root: Path, flag_id: int | None = None, dry_run: bool = False) -> Recovery:
    """Bring the evidence folder (one flag's, or all of them) back in line with the rows."""
    root = Path(root)
    report = Recovery()
    if flag_id is not None:
        folders = [root / str(int(flag_id))]
    else:
        folders = (
            sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
            if root.is_dir()
            else []
        )
    for folder in folders:
        if folder.is_dir():
            _recover_folder(store, folder, report, dry_run)
    return report


def _recover_folder(store: Store, folder: Path, report: Recovery, dry_run: bool) -> None:
    rel = lambda p: f"{folder.name}/{p.name}"  # noqa: E731
    for tmp in sorted(folder.glob(f"{TEMP_PREFIX}*")):
        try:
            fd = os.open(tmp, os.O_RDONLY)
        except FileNotFoundError:  # finished meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                report.in_progress.append(rel(tmp))
                continue
            try:  # locked by us now: still the same file under that name?
                if os.stat(tmp).st_ino != os.fstat(fd).st_ino:
                    continue
            except FileNotFoundError:
                continue
            stored = tmp.name[len(TEMP_PREFIX) :]
            # read the rows only now: an upload commits its row before it lets go of the lock
            names = {e["stored_name"] for e in store.evidence(int(folder.name))}
            if stored in names and not (folder / stored).exists():
                report.renamed.append(f"{folder.name}/{stored}")
                if not dry_run:
                    os.replace(tmp, folder / stored)
            else:
                report.removed_temp.append(rel(tmp))
                if not dry_run:
                    tmp.unlink()
        finally:
            os.close(fd)
    if not dry_run:
        _fsync_dir(folder)
    # the files first, then the rows: a stored file is renamed into place only after its row
    # commits, so every file listed here that an upload made has a row in the read below
    files = sorted(p for p in folder.iterdir() if STORED_NAME.match(p.name))
    names = {e["stored_name"] for e in store.evidence(int(folder.name))}
    for path in files:
        if path.name not in names:
            report.removed_orphans.append(rel(path))
            if not dry_run:
                path.unlink(missing_ok=True)
    report.missing += [
        f"{folder.name}/{n}"
        for n in sorted(names)
        if not (folder / n).exists() and f"{folder.name}/{n}" not in report.renamed
    ]


def evidence_path(store: Store, root: Path, evidence_id: int) -> tuple[dict, Path]:
    item = store.evidence_item(evidence_id)
    path = Path(root) / str(int(item["flag_id"])) / item["stored_name"]
    if not path.is_file():  # a committed upload whose rename was cut short?
        recover(store, root, item["flag_id"])
    if not path.is_file():
        raise NotFoundError(f"evidence {evidence_id}: file is missing from the evidence store")
    return item, path
