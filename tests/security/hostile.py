"""Builders of hostile inputs: disguised VRTs, zip bombs, zip slip, XXE, pathological polygons.

Everything here is built cheaply in memory (or in a temp folder) from the Python standard
library, shapely and geopandas: no hostile file is checked into the repository. The second half
holds the detection machinery (canary, listener, store counts) and a real server in a subprocess.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import uuid
import zipfile
import zlib
from pathlib import Path
from xml.sax.saxutils import escape

import shapely

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------------------
# OGR VRT (vector) and GDAL VRT (raster): the content decides the driver, not the name.


def ogr_vrt(source: str, layer: str | None = None, *, x: str = "x", y: str = "y") -> bytes:
    """An OGR VRT whose only layer reads ``source`` (a path, ``CSV:path``, ``/vsicurl/...``, a URL)."""
    src_layer = f"<SrcLayer>{escape(layer)}</SrcLayer>" if layer else ""
    return (
        "<OGRVRTDataSource>\n"
        '  <OGRVRTLayer name="region">\n'
        f"    <SrcDataSource>{escape(source)}</SrcDataSource>\n"
        f"    {src_layer}\n"
        "    <GeometryType>wkbPoint</GeometryType>\n"
        "    <LayerSRS>EPSG:4326</LayerSRS>\n"
        f'    <GeometryField encoding="PointFromColumns" x="{x}" y="{y}"/>\n'
        "  </OGRVRTLayer>\n"
        "</OGRVRTDataSource>\n"
    ).encode()


def ogr_vrt_sql(source: str, sql: str, wkt_field: str = "wkt") -> bytes:
    """An OGR VRT whose layer is an SQL query on ``source`` (e.g. the service's own SQLite store),
    its geometry a WKT column: a working region built out of another database's rows."""
    return (
        "<OGRVRTDataSource>\n"
        '  <OGRVRTLayer name="region">\n'
        f"    <SrcDataSource>{escape(source)}</SrcDataSource>\n"
        f"    <SrcSQL>{escape(sql)}</SrcSQL>\n"
        "    <GeometryType>wkbPolygon</GeometryType>\n"
        "    <LayerSRS>EPSG:4326</LayerSRS>\n"
        f'    <GeometryField encoding="WKT" field="{wkt_field}"/>\n'
        "  </OGRVRTLayer>\n"
        "</OGRVRTDataSource>\n"
    ).encode()


STORE_SQL = (
    "SELECT 'POLYGON ((108.64 39.86,108.66 39.86,108.66 39.875,108.64 39.875,108.64 39.86))' AS wkt, "
    "name, role, token_hash FROM tokens"
)


def raster_vrt(source: str, *, crs_wkt: str, transform, width: int, height: int, raw: bool) -> bytes:
    """A one-band raster VRT over ``source``, georeferenced on the scenario's grid.

    ``raw=True`` makes a VRTRawRasterBand: the bytes of any file become pixel values (the way a
    renamed VRT leaks a local file through a scan's messages); otherwise a SimpleSource (which
    may be ``/vsicurl/...``)."""
    gt = ", ".join(
        repr(float(v)) for v in (transform.c, transform.a, transform.b, transform.f, transform.d, transform.e)
    )
    if raw:
        band = (
            f'  <VRTRasterBand dataType="Byte" band="1" subClass="VRTRawRasterBand">\n'
            f'    <SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>\n'
            f"    <ImageOffset>0</ImageOffset><PixelOffset>1</PixelOffset><LineOffset>{width}</LineOffset>\n"
            f"  </VRTRasterBand>\n"
        )
    else:
        band = (
            f'  <VRTRasterBand dataType="Byte" band="1">\n'
            f"    <SimpleSource>\n"
            f'      <SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>\n'
            f"      <SourceBand>1</SourceBand>\n"
            f'      <SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>\n'
            f'      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>\n'
            f"    </SimpleSource>\n"
            f"  </VRTRasterBand>\n"
        )
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(crs_wkt)}</SRS>\n"
        f"  <GeoTransform>{gt}</GeoTransform>\n"
        f"{band}"
        f"</VRTDataset>\n"
    ).encode()


# ---------------------------------------------------------------------------------------
# Archives


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``{member name: content}``; names are written as given ("../x", "/abs/x" included)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = compression
            zf.writestr(info, data)
    return buf.getvalue()


def _raw_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip from members already deflated: (name, raw deflate stream, crc32, uncompressed size)."""
    out = io.BytesIO()
    central = []
    dostime, dosdate = 0, (2026 - 1980) << 9 | 1 << 5 | 1
    for name, data, crc, usize in members:
        fname = name.encode()
        offset = out.tell()
        out.write(
            struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, dostime, dosdate, crc, len(data), usize, len(fname), 0)
        )
        out.write(fname)
        out.write(data)
        central.append(
            struct.pack(
                "<4s6H3L5H2L",
                b"PK\x01\x02",
                20 | 3 << 8,
                20,
                0,
                8,
                dostime,
                dosdate,
                crc,
                len(data),
                usize,
                len(fname),
                0,
                0,
                0,
                0,
                0o100644 << 16,
                offset,
            )
            + fname
        )
    cd_offset = out.tell()
    for c in central:
        out.write(c)
    cd_size = out.tell() - cd_offset
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), cd_size, cd_offset, 0))
    return out.getvalue()


def zip_bomb(total_bytes: int = 1_200 * 1024 * 1024, member_bytes: int = 64 * 1024 * 1024) -> bytes:
    """A genuine (every member valid, CRC right) zip of zeros: ~1 MB that inflates to ``total_bytes``.

    One member's deflate stream is computed once and reused, so building it costs ~0.3 s."""
    chunk = bytes(1 << 22)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts, crc = [], 0
    for _ in range(member_bytes // len(chunk)):
        parts.append(comp.compress(chunk))
        crc = zlib.crc32(chunk, crc)
    parts.append(comp.flush())
    data = b"".join(parts)
    n = max(1, total_bytes // member_bytes)
    names = ["region.shp", "region.shx", "region.dbf"] + [f"region_{i}.dbf" for i in range(n)]
    return _raw_zip([(names[i], data, crc, member_bytes) for i in range(n)])


def zip_many(n: int = 10_000) -> bytes:
    """A zip with ``n`` tiny members (stored): too many to look at."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            zf.writestr(zipfile.ZipInfo(f"m{i:05d}.txt", date_time=(2026, 1, 1, 0, 0, 0)), b"x")
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# Valid regions (the carrier of the hostile parts)

# A small box inside the sample scenario (Hangjin Banner), lon/lat.
SAMPLE_BOX = (108.64, 39.86, 108.66, 39.875)


def region_geojson(bounds=SAMPLE_BOX) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"name": "r"}, "geometry": shapely.geometry.mapping(shapely.box(*bounds))}
        ],
    }


def shapefile_members(folder: Path, bounds=SAMPLE_BOX) -> dict[str, bytes]:
    """The files of a valid one-polygon shapefile (EPSG:4326) as ``{name: bytes}``."""
    import geopandas as gpd

    folder.mkdir(parents=True, exist_ok=True)
    gpd.GeoDataFrame({"name": ["r"]}, geometry=[shapely.box(*bounds)], crs="EPSG:4326").to_file(folder / "region.shp")
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.stem == "region"}


def gpkg_without_geometry(path: Path) -> Path:
    """A GeoPackage whose only table has attributes and no geometry column."""
    import pandas as pd
    import pyogrio

    pyogrio.write_dataframe(pd.DataFrame({"name": ["r"], "area": [1.0]}), path, driver="GPKG", layer="attrs")
    return path


# ---------------------------------------------------------------------------------------
# XML entity attacks

KML_POLYGON = (
    "<Polygon><outerBoundaryIs><LinearRing><coordinates>"
    "108.64,39.86 108.66,39.86 108.66,39.875 108.64,39.875 108.64,39.86"
    "</coordinates></LinearRing></outerBoundaryIs></Polygon>"
)


def kml_xxe(target: str) -> bytes:
    """A KML whose placemark name is an external entity reading ``target`` (a path or URL)."""
    uri = target if "://" in target else f"file://{target}"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE kml [<!ENTITY x SYSTEM "{uri}">]>\n'
        f'<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&x;</name>'
        f"<description>&x;</description>{KML_POLYGON}</Placemark></Document></kml>\n"
    ).encode()


def kml_billion_laughs(levels: int = 10) -> bytes:
    ents = ['<!ENTITY lol0 "lollollollollollollollollollol">']
    ents += [f'<!ENTITY lol{i} "{("&lol%d;" % (i - 1)) * 10}">' for i in range(1, levels)]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE kml [\n' + "\n".join(ents) + "\n]>\n"
        f'<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Placemark><name>&lol{levels - 1};</name>'
        f"{KML_POLYGON}</Placemark></Document></kml>\n"
    ).encode()


# ---------------------------------------------------------------------------------------
# JSON


def nan_polygon(value: str = "NaN") -> bytes:
    """A GeoJSON polygon with a non-finite coordinate, as Python's json writes (and reads) it."""
    return (
        '{"type": "Polygon", "coordinates": [[[108.64, 39.86], [%s, 39.86], [108.66, 39.875], '
        "[108.64, 39.875], [108.64, 39.86]]]}" % value
    ).encode()


def deep_json(depth: int = 5_000, *, key: str | None = None) -> str:
    """JSON nested ``depth`` deep: arrays (or objects with ``key``)."""
    if key:
        return f'{{"{key}":' * depth + "1" + "}" * depth
    return "[" * depth + "]" * depth


# ---------------------------------------------------------------------------------------
# Pathological geometry


def star_polygon(n: int, center=(108.65, 39.87), radius: float = 0.02) -> dict:
    """A self-intersecting {n/k} star (k ~ n/2): O(n^2) crossings for a few KB of GeoJSON."""
    k = n // 2 - 1
    while math.gcd(n, k) != 1:
        k -= 1
    cx, cy = center
    pts = [
        [
            round(cx + radius * math.cos(2 * math.pi * (i * k % n) / n), 6),
            round(cy + radius * math.sin(2 * math.pi * (i * k % n) / n), 6),
        ]
        for i in range(n)
    ]
    return {"type": "Polygon", "coordinates": [pts + [pts[0]]]}


def star_body(n: int) -> bytes:
    return json.dumps(star_polygon(n), separators=(",", ":")).encode()


# ---------------------------------------------------------------------------------------
# Areas computed independently of the engine


def geodesic_area_m2(lon0: float, lat0: float, lon1: float, lat1: float, step: float = 0.1) -> float:
    """Geodesic area (WGS 84) of a lon/lat box whose ring is densified every ``step`` degrees."""
    from pyproj import Geod

    def edge(a, b):
        n = max(1, int(math.ceil(max(abs(b[0] - a[0]), abs(b[1] - a[1])) / step)))
        return [(a[0] + (b[0] - a[0]) * i / n, a[1] + (b[1] - a[1]) * i / n) for i in range(n)]

    corners = [(lon0, lat0), (lon1, lat0), (lon1, lat1), (lon0, lat1)]
    ring = [p for i in range(4) for p in edge(corners[i], corners[(i + 1) % 4])]
    area, _ = Geod(ellps="WGS84").polygon_area_perimeter([p[0] for p in ring], [p[1] for p in ring])
    return abs(area)


def ellipsoid_area_m2(a: float = 6378137.0, f: float = 1 / 298.257223563) -> float:
    """Surface area of an ellipsoid of revolution (WGS 84 by default)."""
    e = math.sqrt(f * (2 - f))
    return 2 * math.pi * a * a * (1 + (1 - e * e) / e * math.atanh(e))


# =======================================================================================
# Detection and a real server (the fixtures in conftest.py and test_hostile_inputs.py use these)
#
# - ``Canary``: a named pipe and a regular file outside every folder the service may read. A
#   thread sits in ``open(fifo, 'w')``: anything that opens the pipe for reading releases it and
#   is counted. The regular file holds a unique secret (which must never come back to a client)
#   and has its atime set in the past, so that reading it moves the atime (``relatime``).
# - ``Listener``: a TCP server on 127.0.0.1 recording every connection (answered 404 and closed
#   at once, so that a vulnerable client fails fast rather than hanging).
# - ``store_counts``: row counts of the store (Store interface, plus every SQLite table).
# - ``Server``: the API under uvicorn in a subprocess on a free port, with its own TMPDIR and
#   settings (REDLINE_* environment); requests carry client time-outs, so a server stuck on a
#   hostile input fails a test instead of hanging the suite, and ``ensure`` restarts it.


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Canary:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.dir = folder
        self.secret = f"CANARY-{uuid.uuid4().hex}"
        self.file = folder / "canary.csv"  # a valid CSV too, so that a CSV: source reads it
        self.file.write_text(f"x,y,secret\n108.65,39.87,{self.secret}\n")
        mtime = os.stat(self.file).st_mtime
        self._past = mtime - 100_000
        os.utime(self.file, (self._past, mtime))
        # reads are seen only where the file system updates atimes (relatime/strictatime, not noatime)
        probe = folder / "atime-probe"
        probe.write_text("x")
        os.utime(probe, (self._past, mtime))
        probe.read_text()
        self.atime_works = os.stat(probe).st_atime != self._past
        probe.unlink()
        self.fifo = folder / "canary.fifo"
        os.mkfifo(self.fifo)
        self.opens = 0
        self._stop = False
        self._thread = threading.Thread(target=self._wait, daemon=True, name="canary")
        self._thread.start()

    def _wait(self) -> None:
        payload = f"x,y,secret\n108.65,39.87,{self.secret}\n".encode()
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY)  # blocks until someone opens it for reading
            except OSError:
                return
            try:
                if self._stop:
                    return
                self.opens += 1
                try:
                    os.write(fd, payload)
                except OSError:
                    pass
            finally:
                os.close(fd)

    @property
    def read(self) -> bool:
        """The regular canary's bytes were read (its atime moved)."""
        return self.atime_works and os.stat(self.file).st_atime != self._past

    def violations(self) -> list[str]:
        out = []
        if self.opens:
            out.append(f"the canary pipe {self.fifo} was opened {self.opens} time(s)")
        if self.read:
            out.append(f"the canary file {self.file} was read")
        return out

    def leaked(self, *texts) -> list[str]:
        return [f"canary secret in: {str(t)[:300]!r}" for t in texts if t is not None and self.secret in str(t)]

    def close(self) -> None:
        self._stop = True
        try:  # release the writer's open() with a reader of our own
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            fd = None
        self._thread.join(5)
        if fd is not None:
            os.close(fd)


class Listener:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections: list = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="listener")
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(addr)
            try:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


def store_counts(url: str) -> dict:
    """Row counts: through the Store interface, and (SQLite) every table, jobs included."""
    from redline.store import open_store

    store = open_store(url)
    try:
        flags = store.flags(with_geometry=False)
        counts = {
            "flags": len(flags),
            "scans": len(store.scans()),
            "history": sum(len(store.history(f["id"])) for f in flags),
            "evidence": sum(len(store.evidence(f["id"])) for f in flags),
            "ledger": len(store.ledger_entries()),
            "layer_versions": len(store.layer_versions(current_only=False)),
            "flag_state": sorted((f["id"], f["status"], str(f["updated_at"])) for f in flags),
        }
    finally:
        store.close()
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True)
        try:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE '%VIRTUAL%'"
                )
            ]
            for t in tables:
                counts[f"table:{t}"] = con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
        finally:
            con.close()
    return counts


class Guard:
    """Everything that must not happen during one test; ``verify`` asserts it did not."""

    def __init__(self, canary: Canary, listener: Listener, url: str):
        self.canary, self.listener, self.url = canary, listener, url
        self.before = store_counts(url)

    def verify(self, *texts, store_ignore: tuple[str, ...] = ()) -> None:
        problems = self.canary.violations() + self.canary.leaked(*texts)
        if self.listener.connections:
            problems.append(f"{len(self.listener.connections)} connection(s) to the listener")
        after = store_counts(self.url)
        for k in sorted(set(self.before) | set(after)):
            if k not in store_ignore and self.before.get(k) != after.get(k):
                problems.append(f"store changed: {k} {self.before.get(k)} -> {after.get(k)}")
        assert not problems, "; ".join(problems)


class Server:
    """The API under uvicorn in a subprocess (``python -m uvicorn api.app:create_app --factory``)."""

    def __init__(self, url: str, data_dir: Path, tokens: dict, folder: Path, **settings):
        self.tokens = tokens
        self.folder = folder
        self.tmp = folder / "tmp"  # the server's TMPDIR: uploads are unpacked under it
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.settings = {
            "database_url": url,
            "data_dir": data_dir,
            "evidence_dir": folder / "evidence",
            "max_body_bytes": 5_000_000,
            "max_region_vertices": 50_000,
            **settings,
        }
        self.proc = None
        self.start()

    def start(self) -> None:
        import httpx

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("REDLINE_")}
        env.update({f"REDLINE_{k.upper()}": str(v) for k, v in self.settings.items()})
        env["TMPDIR"] = str(self.tmp)
        self.log_path = self.folder / f"server-{self.port}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.close()
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not start in 90 s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: a stuck request must not keep a core busy after its test
            self.proc.wait(10)
        self.log.close()

    def healthy(self, timeout: float = 2.0) -> bool:
        import httpx

        try:
            return httpx.get(self.base + "/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure(self) -> None:
        """Start again if a previous test left the server stuck or dead."""
        if self.proc.poll() is not None or not self.healthy():
            self.stop()
            self.start()

    def request(self, method: str, path: str, *, role: str | None = "admin", timeout: float = 30.0, **kw):
        import httpx

        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        headers.update(kw.pop("headers", {}))
        return httpx.request(method, self.base + path, headers=headers, timeout=timeout, **kw)

    def post(self, path: str, **kw):
        return self.request("POST", path, **kw)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)
