"""Shared fixtures: rasters and layers built on the fly, a fresh store per test."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from redline.layers import read_layer
from redline.store import open_store

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real"

# A 10 m UTM 49N grid near Hangjin Banner.
ORIGIN = (440000.0, 4420000.0)
UTM49 = "EPSG:32649"


# Every test that takes a store runs on both backends (ids [sqlite] and [postgis]).
BACKENDS = ("sqlite", "postgis")


@pytest.fixture(scope="session")
def postgis():
    """The PostgreSQL server of the PostGIS tests (tests/pg.py): skips, or fails where required."""
    from . import pg

    server = pg.Server()
    yield server
    server.close()


def backend_url(request, backend: str, folder: Path) -> str:
    """A fresh store URL: an SQLite file in ``folder``, or a new PostGIS database that is
    dropped when the fixture that asked for it is torn down."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'store.db'}"
    server = request.getfixturevalue("postgis")
    url = server.database()
    request.addfinalizer(lambda: server.drop(url))
    return url


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    return backend_url(request, request.param, tmp_path)


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def pytest_collection_modifyitems(items):
    """Mark the PostGIS runs, so that ``-m "not postgis"`` leaves them out."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "postgis" in item.fixturenames or any(isinstance(v, str) and v == "postgis" for v in params.values()):
            item.add_marker(pytest.mark.postgis)


@pytest.fixture
def write_raster(tmp_path):
    """Write a GeoTIFF from an array: ``write_raster(arr, name, **profile)`` -> path."""

    def _write(arr, name="change.tif", *, crs=UTM49, res=10.0, origin=ORIGIN, nodata=255, block=256, tags=None):
        path = tmp_path / name
        profile = dict(
            driver="GTiff",
            width=arr.shape[1],
            height=arr.shape[0],
            count=1,
            dtype=arr.dtype,
            crs=crs,
            transform=from_origin(*origin, res, res),
            nodata=nodata,
        )
        if block:
            profile.update(tiled=True, blockxsize=block, blockysize=block)
        with rasterio.open(path, "w", **profile) as ds:
            ds.write(arr, 1)
            if tags:
                ds.update_tags(**tags)
        return path

    return _write


@pytest.fixture
def class_table(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text(
        "code,activity,confidence\n0,none,\n1,mining,high\n2,industrial,high\n3,energy,high\n"
        "4,road,high\n5,construction,high\n6,farmland,nominal\n254,no_observation,\n"
    )
    return path


def pixel_box(col0, row0, col1, row1, origin=ORIGIN, res=10.0):
    """A UTM box covering pixel columns [col0, col1) and rows [row0, row1)."""
    x0, y0 = origin
    return shapely.box(x0 + col0 * res, y0 - row1 * res, x0 + col1 * res, y0 - row0 * res)


@pytest.fixture
def load_zones(tmp_path, store):
    """Load a layer from (geometry, attrs) rows given in UTM 49N."""

    def _load(kind, rows, crs=UTM49, name=None):
        path = tmp_path / (name or f"{kind}.gpkg")
        gdf = gpd.GeoDataFrame([r for _, r in rows], geometry=[g for g, _ in rows], crs=crs)
        gdf.to_file(path, driver="GPKG")
        return store.add_layer_version(read_layer(kind, path))

    return _load


def blank(h=600, w=700):
    return np.zeros((h, w), dtype=np.uint8)


@pytest.fixture
def tile_server():
    """A local XYZ tile server serving magenta tiles; ``url`` its template, ``asked`` the paths
    asked of it, ``stop()`` takes it down."""
    import io
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (256, 256), (255, 0, 255, 255)).save(buf, "PNG")
    tile, asked = buf.getvalue(), []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            ok = re.fullmatch(r"/\d+/\d+/\d+\.png", self.path)
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            if ok:
                self.wfile.write(tile)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    running = [True]

    def stop():
        if running.pop() if running else False:
            server.shutdown()
            server.server_close()

    yield SimpleNamespace(
        url=f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", asked=asked, stop=stop
    )
    stop()
