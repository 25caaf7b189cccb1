"""Opening files a user hands us, safely: GDAL and PROJ only ever see what we checked.

GDAL picks a driver from a file's *content*, not its name: an OGR VRT saved as
``region.geojson`` opens ``/vsicurl/…`` or ``CSV:/etc/passwd``; a raster VRT saved as
``scene.tif`` reads any file it names. So every user file is sniffed here first and only
the formats on the allowlist go on, each to the one driver meant for it:

============== ==================================== =====================================
format          recognised by                        read by
============== ==================================== =====================================
GeoJSON         a JSON object of a GeoJSON type      Python's json + shapely (never GDAL)
GeoPackage      SQLite header + GPKG application id  GDAL GPKG
Shapefile       ``.shp`` magic; zipped: members       GDAL ESRI Shapefile
                checked, extracted under our names
KML / KMZ       XML rooted at ``kml``, no DTD,        GDAL KML / LIBKML
                no entities, no NetworkLink
FlatGeobuf      ``fgb`` magic                        GDAL FlatGeobuf
GeoTIFF / COG   TIFF / BigTIFF magic                 GDAL GTiff only (``driver="GTiff"``)
============== ==================================== =====================================

Archives are checked before anything is extracted (member count, total uncompressed size,
compression ratio, names) and nested archives are refused. CRS strings a user types pass
:func:`user_crs`: EPSG codes and OGC URIs of terrestrial CRSs only, never a PROJ string,
WKT or a file reference. :func:`harden_gdal` switches GDAL/PROJ network access and
risky VRT features off for the process.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pyproj import CRS
from pyproj.exceptions import CRSError as _PyprojCRSError

from .errors import CRSError, InputError, MissingFileError, NotARasterError, TooLargeError

# --- process-wide GDAL / PROJ hardening -------------------------------------------------

# Any HTTP(S) GDAL would attempt goes to a closed local port and fails at once.
HARDENED_CONFIG = {
    "GDAL_HTTP_PROXY": "127.0.0.1:9",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_MAX_RETRY": "0",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".redline-none",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "OGR_SQLITE_ALLOW_EXTERNAL_ACCESS": "NO",
    "PROJ_NETWORK": "OFF",
}


def write_atomic(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` (text: UTF-8) to ``path`` so that it appears whole or not at all: a
    temporary file beside it, fsync, rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def harden_gdal() -> None:
    """Set the hardening options in the environment, where GDAL and PROJ read them on each
    use. Entry points call it: the CLI, the API app and its worker processes. (Driver
    choice needs no switch here: user files reach GDAL only after sniffing, rasters only
    through the GTiff driver.)"""
    for key, value in HARDENED_CONFIG.items():
        os.environ[key] = value
    try:
        import pyproj.network

        pyproj.network.set_network_enabled(False)
    except ImportError:  # pragma: no cover - old pyproj
        pass


# --- CRS strings a user types --------------------------------------------------------------

_CRS_FORMS = (
    re.compile(r"^(?:EPSG:)?(?P<epsg>\d{1,6})$", re.I),
    re.compile(r"^urn:ogc:def:crs:EPSG:[\d.]*:(?P<epsg>\d{1,6})$", re.I),
    re.compile(r"^https?://www\.opengis\.net/def/crs/EPSG/[\d.]+/(?P<epsg>\d{1,6})$", re.I),
    re.compile(
        r"^(?P<crs84>(?:OGC:)?CRS84|urn:ogc:def:crs:OGC:1\.3:CRS84|"
        r"https?://www\.opengis\.net/def/crs/OGC/1\.3/CRS84)$",
        re.I,
    ),
)
CRS_HELP = "use an EPSG code (EPSG:4490, EPSG:32649) or an OGC URI (http://www.opengis.net/def/crs/EPSG/0/4490)"


def user_crs(value) -> CRS:
    """A CRS from a string a user typed: EPSG codes and OGC URIs only, terrestrial only."""
    if isinstance(value, CRS):
        return require_terrestrial(value, "CRS")
    text = str(value).strip()
    for form in _CRS_FORMS:
        m = form.match(text)
        if m is None:
            continue
        try:
            crs = CRS.from_user_input("OGC:CRS84") if m.groupdict().get("crs84") else CRS.from_epsg(int(m["epsg"]))
        except _PyprojCRSError:
            raise CRSError(f"unknown CRS {_short(text)}; {CRS_HELP}") from None
        return require_terrestrial(crs, text)
    raise CRSError(f"CRS {_short(text)} is not accepted; {CRS_HELP}")


def require_terrestrial(crs: CRS, what: str) -> CRS:
    """Refuse CRSs that are not horizontal Earth coordinates (other planets, unit spheres,
    geocentric or vertical-only): areas and overlays would be meaningless."""
    horizontal = crs.sub_crs_list[0] if crs.is_compound and crs.sub_crs_list else crs
    ellipsoid = horizontal.ellipsoid
    earthlike = ellipsoid is not None and 6_350_000 <= ellipsoid.semi_major_metre <= 6_400_000
    if not (horizontal.is_geographic or horizontal.is_projected) or horizontal.is_geocentric or not earthlike:
        raise CRSError(f"{_short(what)} is not a terrestrial geographic or projected CRS")
    return crs


def _short(text: str) -> str:
    text = str(text)
    return repr(text if len(text) <= 80 else text[:77] + "...")


# --- limits -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Bounds on what one user file may cost us (settings supply them in the API)."""

    max_members: int = 64  # files in an archive
    max_unpacked_bytes: int = 256 * 1024 * 1024  # total uncompressed size of an archive
    max_ratio: int = 200  # uncompressed / compressed, per member
    max_json_bytes: int = 64 * 1024 * 1024


DEFAULT_LIMITS = Limits()


# --- sniffing -----------------------------------------------------------------------------

VECTOR_FORMATS = ("GeoJSON", "GPKG", "ESRI Shapefile", "KML", "FlatGeobuf")
ACCEPTED = "GeoJSON, GeoPackage, zipped shapefile, KML/KMZ or FlatGeobuf"
GEOJSON_GEOMETRY_TYPES = (
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
    "Point",
    "LineString",
    "MultiPoint",
    "MultiLineString",
)
GEOJSON_TYPES = ("FeatureCollection", "Feature", *GEOJSON_GEOMETRY_TYPES)
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
SHAPEFILE_IGNORED = (
    ".qix",
    ".sbn",
    ".sbx",
    ".xml",
    ".qmd",
    ".qml",
    ".txt",
    ".html",
    ".htm",
    ".pdf",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
)  # indexes, metadata, KMZ icons: never extracted
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!")
TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass
class VectorSource:
    """A checked vector input: either GeoJSON already parsed, or a path for one GDAL driver."""

    format: str
    path: Path | None = None  # for GDAL
    geojson: dict | None = None  # parsed, for GeoJSON


def _head(path: Path, n: int = 512) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _text_start(head: bytes) -> bytes:
    return head.lstrip(b"\xef\xbb\xbf").lstrip()


def _is_gpkg(head: bytes) -> bool:
    return head.startswith(b"SQLite format 3\x00") and len(head) >= 72 and head[68:72] in (b"GPKG", b"GP10", b"GP11")


def _is_fgb(head: bytes) -> bool:
    return len(head) >= 8 and head[:3] == b"fgb" and head[4:7] == b"fgb"


def _is_shp(head: bytes) -> bool:
    return head[:4] == b"\x00\x00\x27\x0a"


def load_geojson(path: Path, name: str, limits: Limits = DEFAULT_LIMITS) -> dict:
    """Parse a GeoJSON file in Python: no GDAL, no references followed."""
    if path.stat().st_size > limits.max_json_bytes:
        raise TooLargeError(f"{name}: over {limits.max_json_bytes:,} bytes")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{name}: not valid JSON") from None
    except RecursionError:
        raise InputError(f"{name}: JSON nested too deeply") from None
    return check_geojson(doc, name)


def named(path: Path, fmt: str, workdir: Path) -> Path:
    """``path`` under the file name its driver expects (uploads are saved under neutral names)."""
    suffix = {"GPKG": ".gpkg", "FlatGeobuf": ".fgb", "KML": ".kml"}.get(fmt)
    if suffix is None or path.suffix.lower() == suffix:
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    link = workdir / f"layer{suffix}"
    link.symlink_to(path.resolve())
    return link


def check_geojson(doc, name: str) -> dict:
    if not isinstance(doc, dict) or doc.get("type") not in GEOJSON_TYPES:
        raise InputError(f"{name}: not GeoJSON (expected a FeatureCollection, Feature or geometry object)")
    return doc


def geojson_features(doc: dict) -> list | None:
    """The features of a checked GeoJSON document: a collection's, one feature, or a bare
    geometry as a feature without properties."""
    if doc["type"] == "FeatureCollection":
        return doc.get("features")  # None or not a list: the caller's reader refuses it
    if doc["type"] == "Feature":
        return [doc]
    return [{"type": "Feature", "geometry": doc, "properties": {}}]


def geojson_crs(doc) -> str | None:
    """The legacy GeoJSON ``crs`` member (``{"type": "name", "properties": {"name": ...}}``)."""
    member = doc.get("crs") if isinstance(doc, dict) else None
    if isinstance(member, dict) and isinstance(member.get("properties"), dict):
        name = member["properties"].get("name")
        return name if isinstance(name, str) else None
    return None


def check_kml(path: Path, name: str) -> None:
    """KML must be plain XML: no DTD (XXE, billion laughs), no NetworkLink to fetch."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import parse

    try:
        root = parse(str(path), forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except DefusedXmlException:
        raise InputError(f"{name}: KML with a DTD or entities is refused") from None
    except ParseError as exc:
        raise InputError(f"{name}: not valid XML ({exc})") from None
    if not root.tag.rsplit("}", 1)[-1].lower() == "kml":
        raise InputError(f"{name}: XML that is not KML")
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "NetworkLink":
            raise InputError(f"{name}: KML NetworkLinks are refused; send the features themselves")


def sniff_vector(path: Path, name: str, workdir: Path, limits: Limits = DEFAULT_LIMITS) -> VectorSource:
    """Identify a user's vector file by content; archives are checked and extracted into
    ``workdir`` (which must be private to this call). ``name`` is what messages call it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{name}: no such file")
    head = _head(path)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _from_zip(path, name, workdir, limits)
    if _is_gpkg(head):
        return VectorSource("GPKG", named(path, "GPKG", workdir))
    if _is_fgb(head):
        return VectorSource("FlatGeobuf", named(path, "FlatGeobuf", workdir))
    if _is_shp(head):
        if path.suffix.lower() != ".shp":
            raise InputError(f"{name}: a shapefile must be sent zipped with its .shx, .dbf and .prj")
        return VectorSource("ESRI Shapefile", path)
    text = _text_start(head)
    if text.startswith((b"{", b"[")):
        return VectorSource("GeoJSON", geojson=load_geojson(path, name, limits))
    if text.startswith(b"<"):
        check_kml(path, name)
        return VectorSource("KML", named(path, "KML", workdir))
    raise InputError(f"{name}: unsupported file; send {ACCEPTED}")


def _from_zip(path: Path, name: str, workdir: Path, limits: Limits) -> VectorSource:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{name}: not a readable zip archive") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > limits.max_members:
            raise TooLargeError(
                f"{name}: {len(members):,} files in the archive, over the limit of {limits.max_members}"
            )
        total = sum(m.file_size for m in members)
        if total > limits.max_unpacked_bytes:
            raise TooLargeError(f"{name}: unpacks to {total:,} bytes, over the limit of {limits.max_unpacked_bytes:,}")
        wanted: list[tuple[zipfile.ZipInfo, str]] = []
        for m in members:
            member = m.filename.replace("\\", "/")
            parts = member.split("/")
            if member.startswith("/") or ".." in parts or ":" in parts[0] or "\x00" in member:
                raise InputError(f"{name}: archive member {member!r} has an unsafe path")
            suffix = Path(member).suffix.lower()
            if suffix in (".zip", ".kmz", ".gz", ".tgz", ".tar", ".7z", ".rar", ".bz2", ".xz"):
                raise InputError(f"{name}: nested archives are refused ({member!r})")
            if m.file_size > limits.max_ratio * max(m.compress_size, 1) and m.file_size > 1 << 20:
                raise TooLargeError(f"{name}: member {member!r} expands {m.file_size // max(m.compress_size, 1)}x")
            if suffix in SHAPEFILE_PARTS or suffix == ".kml":
                wanted.append((m, member))
            elif suffix not in SHAPEFILE_IGNORED:
                raise InputError(f"{name}: unexpected file {member!r} in the archive; send {ACCEPTED}")
        shps = [w for w in wanted if w[1].lower().endswith(".shp")]
        kmls = [w for w in wanted if w[1].lower().endswith(".kml")]
        if len(shps) + len(kmls) != 1:
            raise InputError(
                f"{name}: the archive must hold exactly one shapefile (or one KML); "
                f"it holds {len(shps)} shapefile(s) and {len(kmls)} KML file(s)"
            )
        main = (shps or kmls)[0][1]
        stem = main[: -len(Path(main).suffix)]
        workdir.mkdir(parents=True, exist_ok=True)
        budget = limits.max_unpacked_bytes
        for m, member in wanted:
            if member[: -len(Path(member).suffix)] != stem:
                continue  # parts of another dataset: ignored
            target = workdir / f"layer{Path(member).suffix.lower()}"  # our names, never the archive's
            budget = _extract(zf, m, target, budget, name)
    if kmls:
        kml = workdir / "layer.kml"
        check_kml(kml, name)
        return VectorSource("KML", kml)
    shp = workdir / "layer.shp"
    if not _is_shp(_head(shp)):
        raise InputError(f"{name}: {Path(main).name} is not a shapefile")
    for part in (".shx", ".dbf"):
        if not (workdir / f"layer{part}").exists():
            raise InputError(f"{name}: the shapefile lacks its {part} file")
    prj = workdir / "layer.prj"
    if prj.exists() and not _text_start(_head(prj)).upper().startswith(
        (b"GEOGCS[", b"PROJCS[", b"GEOGCRS[", b"PROJCRS[", b"COMPD_CS[")
    ):
        raise InputError(f"{name}: the .prj file is not a WKT coordinate system")
    return VectorSource("ESRI Shapefile", shp)


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, budget: int, name: str) -> int:
    """Copy one member out, counting real bytes (declared sizes can lie)."""
    with zf.open(member) as src, open(target, "wb") as out:
        while chunk := src.read(1 << 20):
            budget -= len(chunk)
            if budget < 0:
                raise TooLargeError(f"{name}: the archive unpacks to more than its limit")
            out.write(chunk)
    return budget


def sniff_raster(path: Path, name: str | None = None) -> None:
    """A change product must be a GeoTIFF (COG included) by content, whatever its name."""
    name = name or str(path)
    try:
        head = _head(Path(path), 8)
    except IsADirectoryError:
        raise InputError(f"{name}: is a folder, not a raster") from None
    except FileNotFoundError:
        raise MissingFileError(f"{name}: no such file") from None
    if not head.startswith(TIFF_MAGIC):
        raise NotARasterError(f"{name}: not a readable raster (only GeoTIFF / COG products are read)")


RASTER_DRIVER = "GTiff"  # read mode: the only driver GDAL may try


def finite_coordinates(geoms, name: str) -> None:
    """NaN or infinite coordinates make GEOS loop or lie: refuse them at the edge."""
    import numpy as np
    import shapely

    coords = shapely.get_coordinates(geoms)
    if coords.size and not np.isfinite(coords).all():
        raise InputError(f"{name}: coordinates must be finite numbers (found NaN or infinity)")


__all__ = [
    "ACCEPTED",
    "DEFAULT_LIMITS",
    "HARDENED_CONFIG",
    "Limits",
    "RASTER_DRIVER",
    "VectorSource",
    "check_geojson",
    "finite_coordinates",
    "harden_gdal",
    "load_geojson",
    "require_terrestrial",
    "sniff_raster",
    "sniff_vector",
    "user_crs",
]
