#!/usr/bin/env python
"""Build the planted-truth sample scenario.

A synthetic but realistic case in Hangjin Banner (杭锦旗), Ordos, Inner Mongolia:
three ecological red lines, a nature reserve with core / buffer / experimental
zones, two permits (one expired), two townships, two classified change products
and a land-cover pair. Every activity patch is planted at a known place, so
``truth.json`` says exactly which conflicts the engine has to find.

Everything is laid out in pixel coordinates of one 10 m UTM 49N grid, so we know
exactly which pixels fall in which zone. The layers are then written the way a
Chinese agency hands them over: CGCS2000 lon/lat (EPSG:4490), pinyin-initial
field names, Chinese values, a zipped shapefile and a KML.

    python scripts/make_sample_data.py [--out sample_data]

The output is reproducible byte for byte: every random draw comes from a seeded
stream, and the dates GDAL would stamp into GPKG and DBF headers are pinned.
The tables in sample_data/ (change_classes.csv, transitions.csv, and the control units'
access list access_list.csv) are hand-written: this script reads them, never rewrites them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from pyproj import Transformer
from rasterio import features
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from shapely import affinity, make_valid
from shapely.geometry import Polygon, box, shape
from shapely.validation import explain_validity

SEED = 20260620
TABLES_DIR = Path(__file__).resolve().parent.parent / "sample_data"

UTM = "EPSG:32649"  # WGS 84 / UTM zone 49N: the change products
CGCS2000 = "EPSG:4490"  # what Chinese agencies deliver vector layers in
CENTRE_LONLAT = (108.70, 39.85)

PIXEL = 10.0  # change products
SIZE = 1536
BLOCK = 256
LC_PIXEL = 20.0  # land-cover pair: same footprint, half the resolution
LC_SIZE = SIZE // 2
SWATH_EDGE = 40  # last columns lie outside the satellite swath (nodata)

NODATA, CLOUD = 255, 254
LC_NODATA = 0
MMU_PIXELS = 10  # 0.1 ha at 10 m
MARGIN_M = 100.0  # planted patches keep at least this far from any zone edge
NOISE_GAP = 3  # clear pixels between salt noise and a planted patch
NOISE_SPACING = 2  # clear pixels between two pieces of noise

# Pinned into the GPKG gpkg_contents table and the DBF header instead of today.
STAMP_DATE = "2026-01-01"
ZIP_DATE = (2026, 1, 1, 0, 0, 0)

CLASS_CODES = {
    "none": 0,
    "mining": 1,
    "industrial": 2,
    "energy": 3,
    "transport": 4,
    "construction": 5,
    "farmland": 6,
    "tourism": 7,
    "other": 8,
}
WORLDCOVER = {"tree": 10, "shrub": 20, "grass": 30, "crop": 40, "built": 50, "bare": 60, "water": 80, "wetland": 90}

PRODUCT_A = {
    "product_id": "HJ-CHG-2026-06",
    "mode": "class",
    "sensor": "Sentinel-2 MSI",
    "acquired_before": "2025-08-15",
    "acquired_after": "2026-06-20",
    "class_table": "change_classes.csv",
}
PRODUCT_B = {
    "product_id": "HJ-CHG-2026-09",
    "mode": "class",
    "sensor": "Sentinel-2 MSI",
    "acquired_before": "2026-06-20",
    "acquired_after": "2026-09-18",
    "class_table": "change_classes.csv",
}
PRODUCT_FILES = {PRODUCT_A["product_id"]: "change_2026-06", PRODUCT_B["product_id"]: "change_2026-09"}
LANDCOVER = {
    "product_id": "HJ-LC-2025-2026",
    "mode": "transition",
    "sensor": "Sentinel-2 MSI",
    "before": "landcover_2025.tif",
    "after": "landcover_2026.tif",
    "acquired_before": "2025-07-01",
    "acquired_after": "2026-07-01",
    "transition_table": "transitions.csv",
}

# --- Zones, as (col, row) pixel-corner vertices of the 10 m grid ------------------
# The extra vertices only make the outlines look surveyed rather than drawn.

RESERVE_NAME = "杭锦旗梭梭林自然保护区"
REGIME_CN = {"core": "核心区", "buffer": "缓冲区", "experimental": "实验区"}
# Nested outlines; each zone is the ring between its outline and the next one in.
RESERVE_OUTLINES = {
    "experimental": [
        (80, 70),
        (260, 55),
        (430, 80),
        (600, 60),
        (725, 95),
        (735, 300),
        (715, 480),
        (730, 690),
        (540, 700),
        (380, 690),
        (210, 705),
        (70, 660),
        (90, 470),
        (60, 260),
    ],
    "buffer": [
        (180, 150),
        (320, 140),
        (470, 160),
        (600, 150),
        (610, 330),
        (595, 575),
        (430, 570),
        (290, 580),
        (175, 565),
        (165, 360),
    ],
    "core": [(295, 255), (400, 240), (505, 260), (500, 370), (510, 470), (400, 480), (290, 465), (280, 360)],
}

REDLINES = {
    "RL-01": (
        "库布其沙漠防风固沙生态保护红线",
        "防风固沙",
        [
            (560, 85),
            (760, 60),
            (950, 95),
            (1120, 70),
            (1135, 300),
            (1110, 520),
            (1130, 740),
            (900, 760),
            (700, 735),
            (575, 750),
            (545, 520),
            (565, 300),
        ],
    ),
    "RL-02": (
        "摩林河水源涵养生态保护红线",
        "水源涵养",
        [
            (570, 870),
            (760, 850),
            (960, 880),
            (1180, 860),
            (1195, 1060),
            (1170, 1250),
            (1185, 1380),
            (960, 1395),
            (760, 1370),
            (560, 1385),
            (545, 1130),
        ],
    ),
    # The four vertices after (1370, 240) twist into a 200 m bow-tie: an invalid ring
    # the loader has to repair, far from anything planted.
    "RL-03": (
        "毛乌素沙地生物多样性维护生态保护红线",
        "生物多样性维护",
        [
            (1165, 250),
            (1300, 235),
            (1370, 240),
            (1390, 245),
            (1410, 233),
            (1390, 233),
            (1410, 245),
            (1460, 255),
            (1470, 480),
            (1450, 700),
            (1460, 820),
            (1300, 830),
            (1170, 810),
            (1150, 600),
            (1175, 420),
        ],
    ),
}
# Delivered with no geometry at all, as unsurveyed records often are.
EMPTY_REDLINE = ("RL-04", "待勘界生态保护红线", "防风固沙")
REDLINE_PREFIX = "150625-"  # Hangjin Banner's administrative code

PERMITS = {
    "P1": {
        "XMMC": "库布其200兆瓦光伏治沙示范项目",
        "PZWH": "内发改能源〔2023〕1186号",
        "YXQQ": "2024-01-01",
        "YXQZ": "2030-12-31",
        "XKHD": "energy",
        "outline": [(790, 170), (905, 165), (900, 275), (785, 270)],
    },
    "P2": {
        "XMMC": "杭锦旗精细化工园区扩建项目",
        "PZWH": "鄂环审字〔2018〕57号",
        "YXQQ": "2019-01-01",
        "YXQZ": "2023-12-31",
        "XKHD": "industrial",
        "outline": [(915, 445), (990, 440), (995, 515), (912, 512)],
    },
}

# "Three lines, one list" (三线一单): environmental control units tiling the grid (10 m pixel
# boxes: col0, row0, col1, row1) and their access list (生态环境准入清单), keyed by unit code.
CONTROL_UNITS = {
    "ZH15062510001": ("库布其沙漠优先保护单元", "优先保护单元", (0, 0, 1150, 800)),
    "ZH15062520001": ("独贵塔拉工业园区重点管控单元", "重点管控单元", (1150, 0, 1536, 1536)),
    "ZH15062530001": ("杭锦旗一般管控单元", "一般管控单元", (0, 800, 1150, 1536)),
}
ACCESS_LIST = "access_list.csv"  # their access list: a hand-written table in sample_data/, keyed by unit code

# West and east of a meridian through this pixel, with a few kinks (in degrees).
TOWNSHIPS = (("锡尼镇", "150625100"), ("伊和乌素苏木", "150625201"))
TOWNSHIP_SPLIT = (1120, 768)
TOWNSHIP_KINKS = (0.0, 0.002, -0.0015, 0.001, 0.0)


@dataclass
class Planted:
    """One planted activity patch and what the engine is expected to make of it."""

    name: str
    activity: str
    inside: tuple[str, ...]  # zones it lies in: RL-0x, core/buffer/experimental, P1/P2
    severity: str | None
    status: str | None  # None: no flag expected
    footprints: dict  # product_id -> (rows, cols), in observation order
    grid: str = "change"  # or "landcover" (20 m)
    code: int | None = None
    transition: tuple[int, int] | None = None

    @property
    def observations(self) -> int:
        return len(self.footprints) if self.status else 0

    @property
    def pixel_size(self) -> float:
        return LC_PIXEL if self.grid == "landcover" else PIXEL

    @property
    def transform(self):
        return grid_transform(self.pixel_size)


def rng_for(purpose: str) -> np.random.Generator:
    """An independent stream per purpose, so tweaking one part leaves the others alone."""
    return np.random.default_rng([SEED, zlib.crc32(purpose.encode())])


# --- Grid ------------------------------------------------------------------------


def grid_transform(pixel: float = PIXEL):
    """Upper-left corner on the 10 m lattice that puts the grid centre near CENTRE_LONLAT."""
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    cx, cy = to_utm.transform(*CENTRE_LONLAT)
    half = SIZE * PIXEL / 2
    x0, y0 = round((cx - half) / 10) * 10, round((cy + half) / 10) * 10
    return from_origin(x0, y0, pixel, pixel)


def design_to_utm(vertices, transform=None):
    """Polygon from (col, row) vertices of the 10 m grid to UTM metres."""
    t = transform or grid_transform()
    return affinity.affine_transform(Polygon(vertices), [t.a, t.b, t.d, t.e, t.c, t.f])


def zone_geometries() -> dict:
    """Every zone in UTM, keyed RL-01.., core/buffer/experimental, P1/P2 (RL-03 as drawn: invalid)."""
    zones = {key: design_to_utm(verts) for key, (_, _, verts) in REDLINES.items()}
    outer = {k: design_to_utm(v) for k, v in RESERVE_OUTLINES.items()}
    zones["core"] = outer["core"]
    zones["buffer"] = outer["buffer"].difference(outer["core"])
    zones["experimental"] = outer["experimental"].difference(outer["buffer"])
    zones.update({key: design_to_utm(p["outline"]) for key, p in PERMITS.items()})
    return zones


# --- Shapes ----------------------------------------------------------------------


def blob(rng, centre, n, *, aspect=1.0, angle=0.0, roughness=0.12):
    """The ``n`` pixels nearest ``centre`` (col, row) under a wobbly elliptical metric.

    A level set of a star-shaped distance is one solid lump without holes, and
    taking exactly ``n`` pixels makes the area exact. Pixels come back
    nearest-first, so a prefix of a blob is a smaller blob of the same outline.
    """
    col0, row0 = centre
    reach = int(np.sqrt(n / np.pi) * max(aspect, 1 / aspect) * (1 + 2 * roughness)) + 3
    rows, cols = np.mgrid[row0 - reach : row0 + reach + 1, col0 - reach : col0 + reach + 1]
    dx, dy = cols - col0, rows - row0
    a = np.deg2rad(angle)
    u = (dx * np.cos(a) + dy * np.sin(a)) / np.sqrt(aspect)
    v = (dy * np.cos(a) - dx * np.sin(a)) * np.sqrt(aspect)
    theta = np.arctan2(v, u)
    phases = rng.uniform(0, 2 * np.pi, 3)
    wobble = 1 + sum(roughness / k * np.cos(k * theta + p) for k, p in zip((2, 3, 5), phases))
    order = np.argsort(np.hypot(u, v) / wobble, axis=None, kind="stable")[:n]
    return rows.ravel()[order], cols.ravel()[order]


def road(start=(650, 940), end_col=918, bend=8.0):
    """A 2-pixel band running ESE with a gentle bend.

    The top row never steps by more than one between neighbouring columns, so
    the two rows of consecutive columns always share an edge: 4-connected.
    """
    col0, row0 = start
    t = np.arange(end_col - col0 + 1)
    top = np.floor(row0 + 0.5 * t + bend * np.sin(np.pi * t / t[-1])).astype(int)
    assert np.abs(np.diff(top)).max() <= 1
    rows = np.stack([top, top + 1], axis=1).ravel()
    return rows, np.repeat(col0 + t, 2)


def rectangle(col0, row0, width, height, notch=0):
    """Rows/cols of a rectangle, minus a ``notch`` x ``notch`` square at its top-right corner."""
    rows, cols = np.mgrid[row0 : row0 + height, col0 : col0 + width]
    keep = ~((rows < row0 + notch) & (cols >= col0 + width - notch))
    return rows[keep], cols[keep]


def grow(mask, r):
    """Square (Chebyshev) dilation by ``r`` pixels, numpy only."""
    out = mask.copy()
    for axis in (0, 1):
        src = np.moveaxis(out.copy(), axis, 0)
        dst = np.moveaxis(out, axis, 0)  # a view: writes land in ``out``
        for s in range(1, r + 1):
            dst[s:] |= src[:-s]
            dst[:-s] |= src[s:]
    return out


def value_noise(rng, shape, octaves):
    """Smooth field in [0, 1): blended coarse random lattices (only + and *: same bits on any CPU)."""
    h, w = shape
    field = np.zeros(shape)
    for cell, weight in octaves:
        lattice = rng.random((h // cell + 2, w // cell + 2))
        y, x = np.arange(h) / cell, np.arange(w) / cell
        iy, ix = y.astype(int), x.astype(int)
        fy, fx = (y - iy)[:, None], (x - ix)[None, :]
        fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)  # smoothstep: no creases
        top = lattice[np.ix_(iy, ix)] * (1 - fx) + lattice[np.ix_(iy, ix + 1)] * fx
        bottom = lattice[np.ix_(iy + 1, ix)] * (1 - fx) + lattice[np.ix_(iy + 1, ix + 1)] * fx
        field += weight * (top * (1 - fy) + bottom * fy)
    return field / sum(weight for _, weight in octaves)


def random_clump(rng, size):
    """(row, col) offsets of a random 4-connected clump of ``size`` pixels."""
    cells = [(0, 0)]
    while len(cells) < size:
        r, c = cells[rng.integers(len(cells))]
        dr, dc = ((0, 1), (1, 0), (0, -1), (-1, 0))[rng.integers(4)]
        if (r + dr, c + dc) not in cells:
            cells.append((r + dr, c + dc))
    cells = np.array(cells)
    return cells - cells.min(axis=0)


def scatter_noise(rng, keep_out, n_single=2000, n_clumps=100):
    """Salt noise: lone pixels and 2-6 pixel clumps of random classes 1..8.

    Each piece is below the MMU, stays NOISE_SPACING clear pixels from every
    other piece (so none can merge into a mappable patch) and out of ``keep_out``.
    """
    h, w = keep_out.shape
    blocked = keep_out.copy()
    noise = np.zeros((h, w), np.uint8)
    pieces = [random_clump(rng, s) for s in rng.integers(2, 7, n_clumps)]
    pieces += [np.zeros((1, 2), int)] * n_single
    for cells in pieces:
        extent = cells.max(axis=0) + 1
        while True:
            r, c = rng.integers(0, h - extent[0]), rng.integers(0, w - extent[1])
            rows, cols = cells[:, 0] + r, cells[:, 1] + c
            if not blocked[rows, cols].any():
                break
        noise[rows, cols] = rng.integers(1, 9)
        g = NOISE_SPACING
        blocked[max(r - g, 0) : r + extent[0] + g, max(c - g, 0) : c + extent[1] + g] = True
    sizes = [len(p) for p in pieces]
    codes, counts = np.unique(noise[noise > 0], return_counts=True)
    return noise, {
        "singles": n_single,
        "clumps": n_clumps,
        "clump_pixels": int(sum(sizes[:n_clumps])),
        "pixels": int(sum(sizes)),
        "max_piece_pixels": int(max(sizes)),
        "by_code": {str(k): int(v) for k, v in zip(codes, counts)},
    }


# --- The scenario -------------------------------------------------------------------


def planted_patches() -> list[Planted]:
    a, b = PRODUCT_A["product_id"], PRODUCT_B["product_id"]
    lc = LANDCOVER["product_id"]
    # The persistent site grew between the two scans: A's 300 pixels are the
    # first 300 of B's 350, so the two observations overlap.
    site_rows, site_cols = blob(rng_for("construction_persistent"), (232, 380), 350, aspect=1.3, angle=20)
    change = [
        Planted(
            "mining_core",
            "mining",
            ("core",),
            "critical",
            "new",
            {a: blob(rng_for("mining_core"), (395, 360), 700, aspect=1.4, angle=-30)},
        ),
        Planted("road_seam", "transport", ("RL-02",), "high", "new", {a: road()}),
        Planted("solar_permitted", "energy", ("RL-01", "P1"), "high", "permitted", {a: rectangle(820, 200, 50, 40)}),
        Planted(
            "farmland_redline",
            "farmland",
            ("RL-03",),
            "medium",
            "new",
            {a: blob(rng_for("farmland_redline"), (1310, 560), 1200, aspect=1.8, angle=10)},
        ),
        Planted(
            "industrial_expired_permit",
            "industrial",
            ("RL-01", "P2"),
            "high",
            "new",
            {a: rectangle(940, 470, 25, 20, notch=10)},
        ),
        Planted(
            "construction_persistent",
            "construction",
            ("buffer",),
            "high",
            "new",
            {a: (site_rows[:300], site_cols[:300]), b: (site_rows, site_cols)},
        ),
        Planted("tourism_outside", "tourism", (), None, None, {a: blob(rng_for("tourism_outside"), (230, 1330), 200)}),
    ]
    for p in change:
        p.code = CLASS_CODES[p.activity]
    # Land-cover pair, on its own 20 m grid: (col, row) halved.
    transitions = [
        Planted(
            "wetland_to_cropland",
            "farmland",
            ("RL-02",),
            "medium",
            "new",
            {lc: blob(rng_for("wetland_to_cropland"), (350, 625), 250, aspect=1.4)},
            grid="landcover",
            transition=(WORLDCOVER["wetland"], WORLDCOVER["crop"]),
        ),
        Planted(
            "grass_to_builtup",
            "construction",
            ("experimental",),
            "medium",
            "new",
            {lc: blob(rng_for("grass_to_builtup"), (200, 315), 125)},
            grid="landcover",
            transition=(WORLDCOVER["grass"], WORLDCOVER["built"]),
        ),
    ]
    return change + transitions


def clouds() -> dict:
    """One ~1.5 km x 1 km cloud per product: A's over the east edge of RL-02, B's over open steppe."""
    return {
        PRODUCT_A["product_id"]: blob(rng_for("cloud_a"), (1185, 1150), 11800, aspect=1.5),
        PRODUCT_B["product_id"]: blob(rng_for("cloud_b"), (330, 900), 11800, aspect=1.5, angle=15),
    }


def change_array(product_id, patches, cloud):
    """One product: its planted patches, a cloud, the swath edge, then salt noise around them."""
    arr = np.zeros((SIZE, SIZE), np.uint8)
    for p in patches:
        if product_id in p.footprints:
            arr[p.footprints[product_id]] = p.code
    planted = arr > 0
    arr[cloud] = CLOUD
    arr[:, SIZE - SWATH_EDGE :] = NODATA
    keep_out = grow(planted, NOISE_GAP) | grow(arr >= CLOUD, 1)
    noise, stats = scatter_noise(rng_for(f"noise {product_id}"), keep_out)
    arr[noise > 0] = noise[noise > 0]
    return arr, stats


def landcover_pair(patches):
    """2025 background of steppe, dunes, scrub, a wetland and a farming village; 2026 = 2025 + planted."""
    rng = rng_for("landcover")
    n = LC_SIZE
    wc = WORLDCOVER
    relief = value_noise(rng, (n, n), ((96, 0.55), (32, 0.3), (10, 0.15)))
    before = np.where(relief < 0.46, wc["bare"], wc["grass"]).astype(np.uint8)
    scrub = value_noise(rng, (n, n), ((24, 0.7), (8, 0.3)))
    before[(scrub > 0.64) & (before == wc["grass"])] = wc["shrub"]

    # Wetland along the Molin river inside RL-02, open water at its east end,
    # a riparian willow fringe around it.
    wetland = np.zeros((n, n), bool)
    wetland[blob(rng, (400, 625), 9900, aspect=2.6)] = True
    fringe = grow(wetland, 3) & ~wetland & (scrub > 0.5)
    before[wetland] = wc["wetland"]
    before[fringe] = wc["tree"]
    before[blob(rng, (440, 622), 700, aspect=2.0)] = wc["water"]

    # A farming village south-east, outside every zone, with poplar shelterbelts.
    fields = np.zeros((n, n), bool)
    fields[blob(rng, (665, 650), 5000, aspect=1.5)] = True
    before[fields] = wc["crop"]
    belts = fields & (np.arange(n)[:, None] % 14 == 0)
    before[belts] = wc["tree"]
    before[blob(rng, (665, 650), 600)] = wc["built"]

    before[:, n - SWATH_EDGE // 2 :] = LC_NODATA
    after = before.copy()
    for p in patches:
        rows, cols = p.footprints[LANDCOVER["product_id"]]
        # Each site lies in a stand of its 2025 class, so the transition is really there.
        stand = blob(rng, (round(cols.mean()), round(rows.mean())), 4 * len(rows))
        before[stand] = after[stand] = p.transition[0]
        assert (before[rows, cols] == p.transition[0]).all(), p.name
        after[rows, cols] = p.transition[1]
    return before, after


# --- Writers -------------------------------------------------------------------------

CHANGE_COLOURS = {
    0: (255, 255, 255, 0),
    1: (140, 70, 20, 255),
    2: (130, 40, 160, 255),
    3: (30, 90, 230, 255),
    4: (90, 90, 90, 255),
    5: (230, 30, 30, 255),
    6: (240, 200, 40, 255),
    7: (40, 190, 170, 255),
    8: (250, 130, 200, 255),
    CLOUD: (220, 220, 220, 255),
    NODATA: (0, 0, 0, 0),
}
# ESA WorldCover's legend colours.
LANDCOVER_COLOURS = {
    LC_NODATA: (0, 0, 0, 0),
    10: (0, 100, 0, 255),
    20: (255, 187, 34, 255),
    30: (255, 255, 76, 255),
    40: (240, 150, 255, 255),
    50: (250, 0, 0, 255),
    60: (180, 180, 180, 255),
    80: (0, 100, 200, 255),
    90: (0, 150, 160, 255),
}


def write_geotiff(path, array, transform, *, nodata, colours, tags=None):
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": "uint8",
        "crs": UTM,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
        dst.write_colormap(1, colours)
        if tags:
            dst.update_tags(**tags)


def write_json(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


@contextmanager
def pinned_gdal_dates():
    """Make GDAL stamp STAMP_DATE instead of now (pyogrio's GDAL reads the environment)."""
    old = os.environ.get("OGR_CURRENT_DATE")
    os.environ["OGR_CURRENT_DATE"] = f"{STAMP_DATE}T00:00:00Z"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OGR_CURRENT_DATE"]
        else:
            os.environ["OGR_CURRENT_DATE"] = old


def write_layers(out: Path, zones: dict):
    """Red lines, reserve zones and permits in CGCS2000; townships as KML (always WGS 84)."""

    def to_cgcs(records, geometries):
        return gpd.GeoDataFrame(records, geometry=geometries, crs=UTM).to_crs(CGCS2000)

    rows = [(k, name, kind, zones[k]) for k, (name, kind, _) in REDLINES.items()]
    rows.append((*EMPTY_REDLINE, Polygon()))
    redline = to_cgcs(
        [{"HXBH": REDLINE_PREFIX + k, "HXMC": name, "GNLX": kind} for k, name, kind, _ in rows],
        [geom for *_, geom in rows],
    )
    reserve = to_cgcs(
        [{"BHQMC": RESERVE_NAME, "GNFQ": REGIME_CN[k]} for k in RESERVE_OUTLINES], [zones[k] for k in RESERVE_OUTLINES]
    )
    permits = to_cgcs(
        [{k: v for k, v in p.items() if k != "outline"} for p in PERMITS.values()], [zones[k] for k in PERMITS]
    )

    with pinned_gdal_dates():
        for name, gdf in (("redline", redline), ("reserve", reserve)):
            path = out / f"{name}.gpkg"
            path.unlink(missing_ok=True)  # a fresh file, not a layer added to an old one
            gdf.to_file(path, layer=name, driver="GPKG")
        with tempfile.TemporaryDirectory() as tmp:
            permits.to_file(Path(tmp) / "permits.shp", encoding="UTF-8", DBF_DATE_LAST_UPDATE=STAMP_DATE)
            with zipfile.ZipFile(out / "permits.zip", "w", zipfile.ZIP_DEFLATED) as zf:
                for member in sorted(Path(tmp).iterdir()):
                    zf.writestr(
                        zipfile.ZipInfo(member.name, date_time=ZIP_DATE), member.read_bytes(), zipfile.ZIP_DEFLATED
                    )

    # Townships: split along a kinked meridian, reaching past the grid on every side.
    t = grid_transform()
    west, south, east, north = transform_bounds(
        UTM, "EPSG:4326", *rasterio.transform.array_bounds(SIZE, SIZE, t), densify_pts=21
    )
    west, south, east, north = west - 0.02, south - 0.02, east + 0.02, north + 0.02
    split_lon, _ = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True).transform(
        *(t @ (TOWNSHIP_SPLIT[0] + 0.5, TOWNSHIP_SPLIT[1] + 0.5))
    )
    lats = np.linspace(south, north, len(TOWNSHIP_KINKS))
    seam = [(split_lon + kink, lat) for kink, lat in zip(TOWNSHIP_KINKS, lats)]
    admin = gpd.GeoDataFrame(
        {"name": [name for name, _ in TOWNSHIPS], "code": [code for _, code in TOWNSHIPS]},
        geometry=[Polygon([(west, south), *seam, (west, north)]), Polygon([(east, south), (east, north), *seam[::-1]])],
        crs="EPSG:4326",
    )
    (out / "admin.kml").unlink(missing_ok=True)
    admin.to_file(out / "admin.kml", layer="admin", driver="KML")


def write_control_units(out: Path):
    """Control units as a GeoPackage in CGCS2000 (agency field names), and their access list beside them."""
    t = grid_transform()
    rows = [
        ({"HJDYBM": code, "HJDYMC": name, "DYLX": kind}, design_to_utm([(c0, r0), (c1, r0), (c1, r1), (c0, r1)], t))
        for code, (name, kind, (c0, r0, c1, r1)) in CONTROL_UNITS.items()
    ]
    units = gpd.GeoDataFrame([r for r, _ in rows], geometry=[g for _, g in rows], crs=UTM).to_crs(CGCS2000)
    with pinned_gdal_dates():
        path = out / "control_units.gpkg"
        path.unlink(missing_ok=True)
        units.to_file(path, layer="control_units", driver="GPKG")
    if not (out / ACCESS_LIST).exists():  # written elsewhere: the committed list goes along
        shutil.copyfile(TABLES_DIR / ACCESS_LIST, out / ACCESS_LIST)
    listed = {r["环境管控单元编码"] for r in read_table(out / ACCESS_LIST)}
    if listed - set(CONTROL_UNITS):
        raise ValueError(f"{out / ACCESS_LIST} lists units that are not drawn: {sorted(listed - set(CONTROL_UNITS))}")


def read_table(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def ensure_tables(out: Path, patches):
    """Check the committed class and transition tables agree with the scenario.

    When writing somewhere else, copy them there first so the sidecars' relative
    table names resolve; an existing table is never overwritten.
    """
    class_table, transition_table = PRODUCT_A["class_table"], LANDCOVER["transition_table"]
    for name in (class_table, transition_table):
        if not (out / name).exists():
            if not (TABLES_DIR / name).exists():
                raise FileNotFoundError(f"{TABLES_DIR / name} is missing; it is committed config, restore it")
            shutil.copyfile(TABLES_DIR / name, out / name)

    classes = {int(r["code"]): r["activity"] for r in read_table(out / class_table)}
    wanted = {**{code: word for word, code in CLASS_CODES.items()}, CLOUD: "no_observation"}
    wrong = {code: word for code, word in wanted.items() if classes.get(code) != word}
    if wrong:
        raise ValueError(f"{out / class_table} should map {wrong}")

    transitions = [
        ({int(c) for c in r["before"].split("|")}, {int(c) for c in r["after"].split("|")}, r["activity"])
        for r in read_table(out / transition_table)
    ]
    for p in patches:
        if p.transition:
            before, after = p.transition
            matches = [word for b4, af, word in transitions if before in b4 and after in af]
            if matches[:1] != [p.activity]:
                raise ValueError(f"{out / transition_table} should map {before}->{after} to {p.activity}")


# --- Checks and truth ----------------------------------------------------------------------


def pixels_polygons(rows, cols, transform) -> list:
    """The pixels' footprint as polygons: rasterio's 4-connected vectorisation."""
    r0, c0 = rows.min(), cols.min()
    mask = np.zeros((rows.max() - r0 + 1, cols.max() - c0 + 1), np.uint8)
    mask[rows - r0, cols - c0] = 1
    return [
        shape(g)
        for g, _ in features.shapes(mask, mask=mask.astype(bool), transform=transform @ transform.translation(c0, r0))
    ]


def one_solid_polygon(rows, cols, transform, what):
    polygons = pixels_polygons(rows, cols, transform)
    if len(polygons) != 1 or polygons[0].interiors:
        raise AssertionError(f"{what} should be one 4-connected blob without holes")
    return polygons[0]


def read_back(out: Path):
    """The layers as written, back in UTM: zones keyed like zone_geometries(), and the townships."""
    redline = gpd.read_file(out / "redline.gpkg", layer="redline")
    rl03 = redline.geometry[redline.HXBH == REDLINE_PREFIX + "RL-03"].iloc[0]
    assert "Self-intersection" in explain_validity(rl03), "RL-03 should keep its bow-tie"
    assert redline.geometry.is_empty.sum() == 1, "one red line should have an empty geometry"
    redline = redline[~redline.geometry.is_empty].to_crs(UTM)
    zones = {code.removeprefix(REDLINE_PREFIX): make_valid(g) for code, g in zip(redline.HXBH, redline.geometry)}
    reserve = gpd.read_file(out / "reserve.gpkg", layer="reserve").to_crs(UTM)
    regime = {cn: word for word, cn in REGIME_CN.items()}
    zones.update({regime[z]: g for z, g in zip(reserve.GNFQ, reserve.geometry)})
    permits = gpd.read_file(out / "permits.zip").to_crs(UTM)
    zones.update({k: g for k, g in zip(PERMITS, permits.geometry)})

    townships = gpd.read_file(out / "admin.kml")  # read by LIBKML: Name, description, ..., code
    name = next(c for c in townships.columns if c.lower() == "name")
    assert "code" in townships.columns, f"admin.kml lost its code field: {list(townships.columns)}"
    fields = [c for c in townships.columns if c != "geometry"]
    townships = townships.rename(columns={name: "name"}).to_crs(UTM)
    grid = box(*rasterio.transform.array_bounds(SIZE, SIZE, grid_transform()))
    assert townships.union_all().contains(grid), "the townships should cover the whole grid"
    return zones, townships, fields


def check_layout(patches, zones, townships, cloud_polygons):
    """Each patch sits in exactly its zones, MARGIN_M clear of every zone edge, cloud and township line."""
    observed = box(*rasterio.transform.array_bounds(SIZE, SIZE - SWATH_EDGE, grid_transform())).buffer(-MARGIN_M)
    cloud_a = cloud_polygons[PRODUCT_A["product_id"]]
    assert cloud_a.intersects(zones["RL-02"]) and not zones["RL-02"].contains(cloud_a), (
        "cloud A should cover part of RL-02"
    )
    township_lines = townships.boundary.union_all()
    taken = {}
    for p in patches:
        for product_id, (rows, cols) in p.footprints.items():
            pixels = set(zip(rows.tolist(), cols.tolist()))
            assert len(pixels) == len(rows), f"{p.name}: repeated pixels"
            for other, other_pixels in taken.get(product_id, {}).items():
                assert not pixels & other_pixels, f"{p.name} overlaps {other}"
            taken.setdefault(product_id, {})[p.name] = pixels

            geom = one_solid_polygon(rows, cols, p.transform, p.name)
            assert observed.contains(geom), f"{p.name} is too near the grid or swath edge"
            for key, zone in zones.items():
                if key in p.inside:
                    assert zone.contains(geom), f"{p.name} should lie inside {key}"
                    gap = geom.distance(zone.boundary)
                else:
                    gap = geom.distance(zone)
                assert gap >= MARGIN_M, f"{p.name} is only {gap:.0f} m from {key}"
            assert geom.distance(township_lines) >= MARGIN_M, f"{p.name} is near a township boundary"
            if p.grid == "change":
                assert all(geom.distance(c) >= MARGIN_M for c in cloud_polygons.values()), f"{p.name} is near a cloud"


def describe(p: Planted, zones, townships) -> dict:
    """The truth record of one planted patch."""
    to_lonlat = Transformer.from_crs(UTM, CGCS2000, always_xy=True)
    footprints = []
    for product_id, (rows, cols) in p.footprints.items():
        lon, lat = to_lonlat.transform(*(p.transform @ (cols.mean() + 0.5, rows.mean() + 0.5)))
        footprints.append(
            {
                "product": product_id,
                "pixels": int(len(rows)),
                "area_ha_planar": round(len(rows) * p.pixel_size**2 / 10_000, 4),
                "centroid_lonlat": [round(lon, 7), round(lat, 7)],
                "pixel_bbox": {
                    "row_min": int(rows.min()),
                    "col_min": int(cols.min()),
                    "row_max": int(rows.max()),
                    "col_max": int(cols.max()),
                },
            }
        )
    geom = one_solid_polygon(*p.footprints[footprints[0]["product"]], p.transform, p.name)
    redlines = [k for k in p.inside if k in REDLINES]
    regimes = [k for k in p.inside if k in REGIME_CN]
    permit = next((PERMITS[k] for k in p.inside if k in PERMITS), None)
    first = footprints[0]
    return {
        "name": p.name,
        "product": first["product"],
        "grid": p.grid,
        "activity": p.activity,
        **(
            {"code": p.code}
            if p.code is not None
            else {"transition": {"before": p.transition[0], "after": p.transition[1]}}
        ),
        "pixels": first["pixels"],
        "pixel_size_m": p.pixel_size,
        "area_ha_planar": first["area_ha_planar"],
        "centroid_lonlat": first["centroid_lonlat"],
        "layer": "redline" if redlines else "reserve" if regimes else None,
        "zones": [REDLINES[k][0] for k in redlines] or regimes,
        "zone_codes": [REDLINE_PREFIX + k for k in redlines],
        "reserve": RESERVE_NAME if regimes else None,
        "permit": permit
        and {
            "PZWH": permit["PZWH"],
            "valid_from": permit["YXQQ"],
            "valid_to": permit["YXQZ"],
            "activity": permit["XKHD"],
        },
        "township_code": next(c for c, g in zip(townships.code, townships.geometry) if g.contains(geom)),
        "severity": p.severity,
        "status": p.status,
        "observations": p.observations,
        "footprints": footprints,
        # Closest approach to any zone edge (inside) or zone (outside), as laid out.
        "min_margin_m": round(min(geom.distance(z.boundary if k in p.inside else z) for k, z in zones.items()), 1),
    }


def seams_crossed(rows, cols) -> dict:
    """Block boundaries a footprint spans, in pixel offsets."""

    def crossed(index):
        return [int(b) * BLOCK for b in np.unique(index // BLOCK)[1:]]

    return {"columns": crossed(cols), "rows": crossed(rows)}


def counts(arr) -> dict:
    codes, n = np.unique(arr, return_counts=True)
    return {str(c): int(k) for c, k in zip(codes, n)}


# National leads (线索) as the supervision platform issues them: a CSV table with CGCS2000
# lon/lat columns. One sits on a planted patch the scan flags (an observation of that flag),
# the others inside red lines, clear of every planted patch and permit (new flags).
LEADS_FILE = "national_leads.csv"
LEADS_HEADER = ("线索编号", "行政区", "活动类型", "发现日期", "经度", "纬度", "备注")
LEADS = (
    ("XS-2026-0001", "farmland_redline", "开垦", "2026-07-15", "疑似新增耕地"),
    ("XS-2026-0002", "RL-02", "采矿", "2026-07-20", "疑似采砂点"),
    ("XS-2026-0003", "RL-01", "建设", "2026-07-22", "疑似新建房屋"),
)


def write_leads(out: Path, patches, zones) -> list[dict]:
    """The sample lead file; returns the leads with where they lie (for truth.json)."""
    to_lonlat = Transformer.from_crs(UTM, CGCS2000, always_xy=True)
    planted = {p.name: p for p in patches}
    clear = [
        one_solid_polygon(*fp, p.transform, p.name).buffer(2 * MARGIN_M)
        for p in patches
        for fp in p.footprints.values()
    ] + [zones[k].buffer(2 * MARGIN_M) for k in PERMITS]
    rows, truth = [], []
    for lead_id, where, activity, found, note in LEADS:
        if where in planted:
            p = planted[where]
            point = one_solid_polygon(*next(iter(p.footprints.values())), p.transform, p.name).representative_point()
        else:
            free = zones[where].buffer(-3 * MARGIN_M)
            for c in clear:
                free = free.difference(c)
            point = free.representative_point()
        lon, lat = to_lonlat.transform(point.x, point.y)
        rows.append((lead_id, "杭锦旗", activity, found, f"{lon:.7f}", f"{lat:.7f}", note))
        truth.append({"lead_id": lead_id, "where": where, "on_planted_patch": where in planted})
    with (out / LEADS_FILE).open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(LEADS_HEADER)
        writer.writerows(rows)
    return truth


# --- Entry points ---------------------------------------------------------------------------


def generate(out: Path) -> dict:
    """Write the whole scenario into ``out``, check it, and return the truth record."""
    out.mkdir(parents=True, exist_ok=True)
    patches = planted_patches()
    ensure_tables(out, patches)
    zones = zone_geometries()
    write_layers(out, zones)
    write_control_units(out)

    t10 = grid_transform()
    cloud_footprints = clouds()
    products, noise = {}, {}
    for meta in (PRODUCT_A, PRODUCT_B):
        pid, stem = meta["product_id"], PRODUCT_FILES[meta["product_id"]]
        arr, noise[pid] = change_array(pid, [p for p in patches if p.grid == "change"], cloud_footprints[pid])
        write_geotiff(
            out / f"{stem}.tif",
            arr,
            t10,
            nodata=NODATA,
            colours=CHANGE_COLOURS,
            tags={
                "REDLINE_PRODUCT_ID": pid,
                "REDLINE_SENSOR": meta["sensor"],
                "REDLINE_ACQUIRED_BEFORE": meta["acquired_before"],
                "REDLINE_ACQUIRED_AFTER": meta["acquired_after"],
            },
        )
        write_json(out / f"{stem}.json", meta)
        in_rl02 = features.geometry_mask([zones["RL-02"]], arr.shape, t10, invert=True)
        products[pid] = {
            "file": f"{stem}.tif",
            "code_counts": counts(arr),
            "cloud_pixels": int(np.count_nonzero(arr == CLOUD)),
            # Pixel-centre rule, against RL-02 as laid out in UTM.
            "cloud_pixels_in_zone": {REDLINE_PREFIX + "RL-02": int(in_rl02[cloud_footprints[pid]].sum())},
            "nodata_columns": [SIZE - SWATH_EDGE, SIZE],
        }

    before, after = landcover_pair([p for p in patches if p.grid == "landcover"])
    t20 = grid_transform(LC_PIXEL)
    write_geotiff(out / LANDCOVER["before"], before, t20, nodata=LC_NODATA, colours=LANDCOVER_COLOURS)
    write_geotiff(out / LANDCOVER["after"], after, t20, nodata=LC_NODATA, colours=LANDCOVER_COLOURS)
    write_json(out / "landcover_pair.json", LANDCOVER)
    products[LANDCOVER["product_id"]] = {
        "before": LANDCOVER["before"],
        "after": LANDCOVER["after"],
        "code_counts_before": counts(before),
        "code_counts_after": counts(after),
        "changed_pixels": int(np.count_nonzero(before != after)),
    }

    # Check the layout against the layers as written (after the round trip through CGCS2000).
    zones_back, townships, township_fields = read_back(out)
    clouds_back = {pid: one_solid_polygon(*fp, t10, f"cloud {pid}") for pid, fp in cloud_footprints.items()}
    check_layout(patches, zones_back, townships, clouds_back)
    leads = write_leads(out, patches, zones_back)

    road = next(p for p in patches if p.name == "road_seam").footprints[PRODUCT_A["product_id"]]
    truth = {
        "scenario": "Hangjin Banner (杭锦旗), Ordos, Inner Mongolia: synthetic, with planted truth",
        "generator": "scripts/make_sample_data.py",
        "seed": SEED,
        "grid": {
            "crs": UTM,
            "width": SIZE,
            "height": SIZE,
            "pixel_size_m": PIXEL,
            "block": BLOCK,
            "origin": [t10.c, t10.f],
            "affine": list(t10)[:6],
        },
        "landcover_grid": {
            "crs": UTM,
            "width": LC_SIZE,
            "height": LC_SIZE,
            "pixel_size_m": LC_PIXEL,
            "block": BLOCK,
            "origin": [t20.c, t20.f],
            "affine": list(t20)[:6],
        },
        "mmu_pixels": MMU_PIXELS,
        "margin_m": MARGIN_M,
        "products": products,
        "patches": [describe(p, zones_back, townships) for p in patches],
        "road_seams_crossed": seams_crossed(*road),
        "noise": noise,
        "leads": {"file": LEADS_FILE, "crs": CGCS2000, "leads": leads},
        "layers": {
            "redline": {
                "file": "redline.gpkg",
                "layer": "redline",
                "crs": CGCS2000,
                "features": len(REDLINES) + 1,
                "empty_geometry": REDLINE_PREFIX + EMPTY_REDLINE[0],
                "invalid_geometry": REDLINE_PREFIX + "RL-03",
            },
            "reserve": {"file": "reserve.gpkg", "layer": "reserve", "crs": CGCS2000, "name": RESERVE_NAME},
            "permit": {
                "file": "permits.zip",
                "crs": CGCS2000,
                "permits": [{k: v for k, v in p.items() if k != "outline"} for p in PERMITS.values()],
            },
            "control": {
                "file": "control_units.gpkg",
                "crs": CGCS2000,
                "units": [{"code": c, "name": n, "type": k} for c, (n, k, _) in CONTROL_UNITS.items()],
                "access_list": ACCESS_LIST,
            },
            "admin": {
                "file": "admin.kml",
                "crs": "EPSG:4326",
                "fields_read_back": township_fields,
                "units": [{"name": n, "code": c} for n, c in zip(townships.name, townships.code)],
            },
        },
    }
    write_json(out / "truth.json", truth)
    return truth


def summarise(out: Path, truth: dict) -> str:
    lines = [f"wrote {out}:"]
    for path in sorted(out.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            lines.append(f"  {path.name:24s} {path.stat().st_size:>8,d} B")
    lines.append("planted (pixels, planar ha, layer:zones -> severity/status):")
    for r in truth["patches"]:
        pixels = "+".join(str(f["pixels"]) for f in r["footprints"])
        zones = ",".join(r["zone_codes"] or r["zones"]) or "-"
        lines.append(
            f"  {r['name']:26s} {r['product']:16s} {pixels:>8s} px {r['area_ha_planar']:6.2f} ha  "
            f"{r['layer'] or '-'}:{zones} -> {r['severity']}/{r['status']}"
        )
    seams = truth["road_seams_crossed"]
    lines.append(f"road_seam crosses block seams at columns {seams['columns']} and rows {seams['rows']}")
    for pid, n in truth["noise"].items():
        lines.append(f"noise in {pid}: {n['singles']} single pixels + {n['clumps']} clumps = {n['pixels']} px")
    units = ", ".join(f"{u['name']} {u['code']}" for u in truth["layers"]["admin"]["units"])
    fields = ", ".join(truth["layers"]["admin"]["fields_read_back"])
    lines.append(f"admin.kml read back: {units} (fields: {fields})")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=TABLES_DIR, help="output folder (default: sample_data/ at the repository root)"
    )
    args = parser.parse_args(argv)
    print(summarise(args.out, generate(args.out)))


if __name__ == "__main__":
    main()
