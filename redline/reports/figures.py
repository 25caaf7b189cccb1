"""Map figures and charts for reports, drawn with matplotlib (Agg; no network unless a basemap is set).

A map is drawn in a local azimuthal equidistant projection centred on what it shows, so the
scale bar is true in metres and north is up at the centre. Geometry comes in lon/lat
(EPSG:4326). Each figure comes back as PNG bytes with what a test (or a caller placing a
marker) needs to find a lon/lat on the image: :meth:`MapFigure.pixel`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, ever

import numpy as np  # noqa: E402
import shapely  # noqa: E402
from matplotlib import font_manager, patheffects  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Circle, PathPatch, Rectangle  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from pyproj import CRS, Transformer  # noqa: E402

# Chinese names must render: Noto CJK (Debian's fonts-noto-cjk, scripts/provision_reports.sh)
# first, the other CJK families a machine may have next, DejaVu for Latin fallback.
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
)

# colours: one place for every figure (and the templates' legends, through the context)
SEVERITY_COLOURS = {"critical": "#b3261e", "high": "#e8590c", "medium": "#f2b705", "low": "#1c7ed6", None: "#6c757d"}
REGIME_STYLE = {  # facecolour, edgecolour, label
    "redline": ("#f4a6a6", "#c92a2a", "red line 生态保护红线"),
    "core": ("#2b8a3e", "#1b5e20", "core 核心区"),
    "core_protection": ("#2b8a3e", "#1b5e20", "core protection 核心保护区"),
    "buffer": ("#8ce99a", "#2b8a3e", "buffer 缓冲区"),
    "experimental": ("#d3f9d8", "#2b8a3e", "experimental 实验区"),
    "general_control": ("#d3f9d8", "#2b8a3e", "general control 一般控制区"),
    # environmental control units (三线一单), drawn translucent under the protection zones
    "priority_protection_unit": ("#fcc2d7", "#a61e4d", "priority protection unit 优先保护单元"),
    "key_control_unit": ("#ffe8a1", "#e67700", "key control unit 重点管控单元"),
    "general_control_unit": ("#d0ebff", "#1971c2", "general control unit 一般管控单元"),
}
FOOTPRINT_STYLE = ("#7048e8", "#212529", "project footprint 项目范围")
RING_COLOUR = "#495057"
PERMIT_STYLE = ("none", "#1864ab", "permit 许可范围")
SEVERITY_LABELS = {
    "critical": "critical 严重",
    "high": "high 高",
    "medium": "medium 中",
    "low": "low 低",
    None: "no severity",
}


@lru_cache(maxsize=1)
def cjk_fonts() -> tuple[str, ...]:
    """The CJK font families matplotlib can use here, best first (empty: Chinese would be tofu)."""
    have = {f.name for f in font_manager.fontManager.ttflist}
    return tuple(f for f in CJK_FAMILIES if f in have)


def _rc() -> dict:
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [*cjk_fonts(), "DejaVu Sans"],
        "axes.unicode_minus": False,
        "font.size": 8,
    }


@dataclass
class MapFigure:
    """A rendered map: PNG bytes, the projection, the map's extent in it and where the axes
    lie on the image (pixels, origin top left)."""

    png: bytes
    crs: str
    extent: tuple[float, float, float, float]  # minx, miny, maxx, maxy in ``crs`` (metres)
    axes_px: tuple[float, float, float, float]  # left, top, right, bottom on the image
    size_px: tuple[int, int]  # width, height
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, label) shown

    def pixel(self, lon: float, lat: float) -> tuple[int, int]:
        """Image (column, row) of a lon/lat point."""
        x, y = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(self.crs), always_xy=True).transform(
            lon, lat
        )
        minx, miny, maxx, maxy = self.extent
        left, top, right, bottom = self.axes_px
        col = left + (x - minx) / (maxx - minx) * (right - left)
        row = top + (maxy - y) / (maxy - miny) * (bottom - top)
        return int(round(col)), int(round(row))


def local_crs(geom) -> str:
    """An azimuthal equidistant projection centred on ``geom`` (lon/lat)."""
    c = geom.centroid if not geom.is_empty else shapely.Point(0, 0)
    return f"+proj=aeqd +lat_0={c.y:.6f} +lon_0={c.x:.6f} +datum=WGS84 +units=m +no_defs"


def _projector(crs: str):
    t = Transformer.from_crs(CRS.from_epsg(4326), CRS.from_user_input(crs), always_xy=True)
    return lambda g: shapely.transform(g, lambda xy: np.column_stack(t.transform(xy[:, 0], xy[:, 1])))


def _path(geom) -> MplPath | None:
    """A matplotlib path of the polygons (holes included) or lines of ``geom``."""
    verts, codes = [], []

    def ring(coords, closed=True):
        xy = np.asarray(coords)[:, :2]
        if len(xy) < 2:
            return
        verts.extend(xy.tolist())
        codes.extend([MplPath.MOVETO] + [MplPath.LINETO] * (len(xy) - 1))
        if closed:  # a shapely ring repeats its first point: that last vertex closes it
            codes[-1] = MplPath.CLOSEPOLY

    for g in getattr(geom, "geoms", [geom]):
        if g.is_empty:
            continue
        if g.geom_type == "Polygon":
            ring(g.exterior.coords)
            for hole in g.interiors:
                ring(hole.coords)
        elif g.geom_type in ("LineString", "LinearRing"):
            ring(g.coords, closed=False)
        elif g.geom_type in ("MultiPolygon", "MultiLineString", "GeometryCollection"):
            sub = _path(g)
            if sub is not None:
                verts.extend(sub.vertices.tolist())  # type: ignore[union-attr]  # stubs: ArrayLike, an ndarray here
                codes.extend(sub.codes.tolist())  # type: ignore[union-attr]
    return MplPath(verts, codes) if verts else None


def _draw(ax, geom, **kw) -> None:
    p = _path(geom)
    if p is not None:
        ax.add_patch(PathPatch(p, **kw))


def _nice_length(span_m: float) -> float:
    """A round scale-bar length about a quarter of ``span_m``."""
    target = max(span_m / 4, 1.0)
    exp = 10 ** math.floor(math.log10(target))
    return max(m * exp for m in (1, 2, 5) if m * exp <= target)


def _scale_bar(ax, extent) -> None:
    minx, miny, maxx, maxy = extent
    length = _nice_length(maxx - minx)
    x0, y0 = minx + 0.04 * (maxx - minx), miny + 0.05 * (maxy - miny)
    h = 0.012 * (maxy - miny)
    for i in range(4):  # alternating black and white quarters
        ax.add_patch(
            Rectangle(
                (x0 + i * length / 4, y0),
                length / 4,
                h,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.6,
                zorder=20,
            )
        )
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    halo = [patheffects.withStroke(linewidth=2.5, foreground="white")]  # legible over any zone
    ax.text(x0, y0 + 1.8 * h, "0", ha="center", va="bottom", fontsize=7, zorder=20, path_effects=halo)
    ax.text(x0 + length, y0 + 1.8 * h, label, ha="center", va="bottom", fontsize=7, zorder=20, path_effects=halo)


def _north_arrow(ax) -> None:
    ax.annotate(
        "",
        xy=(0.94, 0.95),
        xytext=(0.94, 0.84),
        xycoords="axes fraction",
        arrowprops={"arrowstyle": "-|>,head_width=0.5,head_length=0.9", "color": "black", "linewidth": 1.6},
        zorder=20,
    )
    ax.text(
        0.94,
        0.965,
        "N 北",
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize=9,
        fontweight="bold",
        zorder=20,
        path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
    )


def map_figure(
    *,
    focus,
    zones=(),
    admin=(),
    flags=(),
    highlight=None,
    region=None,
    not_observed=None,
    min_span_m: float = 1500.0,
    pad: float = 0.15,
    size_in: tuple[float, float] = (7.0, 5.2),
    dpi: int = 110,
    title: str | None = None,
    label_flags: bool = True,
    controls=(),
    footprint=None,
    rings_km: tuple[float, ...] = (),
    label_controls: bool = False,
    basemap_url: str | None = None,
) -> MapFigure:
    """Draw a map around ``focus`` (lon/lat geometry).

    ``zones``: protection zones (objects with ``kind``, ``regime``, ``name``, ``geometry``), filled by
    regime; permits outlined. ``admin``: admin units, dashed with their names. ``flags``: dicts with
    ``geometry``, ``severity`` and ``id``, filled by severity. ``highlight``: the subject patch, drawn
    thick. ``region``: an inspection region, outlined; ``not_observed``: hatched.
    ``controls``: environmental control units, translucent by type (named with ``label_controls``).
    ``footprint``: a proposed project, filled; ``rings_km``: rings that far around it (true distance:
    drawn in the map's equidistant projection), labelled. ``basemap_url``: an XYZ tile template
    drawn underneath (:mod:`redline.reports.basemap`; the map is drawn without it if it fails).
    """
    crs = local_crs(focus)
    proj = _projector(crs)
    fx0, fy0, fx1, fy1 = proj(focus).bounds
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    w, h = (fx1 - fx0) * (1 + 2 * pad), (fy1 - fy0) * (1 + 2 * pad)
    aspect = size_in[0] / size_in[1]
    w, h = max(w, h * aspect, min_span_m), max(h, w / aspect, min_span_m / aspect)
    w = max(w, h * aspect)
    extent = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    view = shapely.box(*extent)

    legend: dict[str, str] = {}
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=size_in, dpi=dpi)
        ax = fig.add_axes((0.01, 0.01, 0.98, 0.98 if title is None else 0.92))
        ax.set_facecolor("#f8f9fa")
        image = None
        if basemap_url:
            from .basemap import basemap_image

            axes_px = (int(size_in[0] * dpi * 0.98), int(size_in[1] * dpi * (0.98 if title is None else 0.92)))
            image = basemap_image(basemap_url, crs, extent, axes_px)
            if image is not None:
                ax.imshow(
                    image, extent=(extent[0], extent[2], extent[1], extent[3]), zorder=0, interpolation="bilinear"
                )
                ax.text(
                    0.99, 0.005, "basemap 底图", transform=ax.transAxes, ha="right", va="bottom", fontsize=6, zorder=20
                )
                legend["basemap 底图"] = "#adb5bd"
        order = {
            "experimental": 0,
            "general_control": 0,
            "buffer": 1,
            "core": 2,
            "core_protection": 2,
            "redline": 3,
            "permit": 4,
        }
        for z in sorted(zones, key=lambda z: order.get(z.regime if z.kind != "permit" else "permit", 0)):
            g = proj(z.geometry).intersection(view.buffer(w))
            if g.is_empty or not g.intersects(view):  # only what the map shows gets a legend entry
                continue
            if z.kind == "permit":
                face, edge, label = PERMIT_STYLE
                _draw(ax, g, facecolor="none", edgecolor=edge, linewidth=1.2, linestyle="--", zorder=4)
            else:
                face, edge, label = REGIME_STYLE.get(z.regime, ("#e9ecef", "#495057", z.regime))
                # red lines show what lies under them; over a basemap every zone does (roads, villages)
                alpha = 0.55 if z.kind == "redline" or image is not None else 1.0
                _draw(
                    ax, g, facecolor=face, edgecolor=edge, linewidth=1.0, alpha=alpha, zorder=2 + (z.kind == "redline")
                )
            legend.setdefault(label, face if face != "none" else edge)
        for u in controls:
            g = proj(u.geometry).intersection(view.buffer(w))
            if g.is_empty or not g.intersects(view):
                continue
            face, edge, label = REGIME_STYLE.get(u.regime, ("#e9ecef", "#495057", u.regime))
            _draw(ax, g, facecolor=face, edgecolor="none", alpha=0.45, zorder=1)
            _draw(ax, g, facecolor="none", edgecolor=edge, linewidth=1.4, linestyle=(0, (8, 2, 2, 2)), zorder=6)
            legend.setdefault(label, face)
            # the name where it does not cover what the map is about (its centre)
            inside = g.intersection(view).difference(shapely.Point(cx, cy).buffer(0.3 * min(w, h)))
            if label_controls and not inside.is_empty and inside.area > 0.03 * view.area:
                p = inside.representative_point()
                ax.text(
                    p.x,
                    p.y,
                    f"{u.name}\n{u.code or ''}",
                    fontsize=7,
                    color=edge,
                    ha="center",
                    va="center",
                    zorder=6,
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
                )
        for a in admin:
            g = proj(a.geometry).intersection(view.buffer(w))
            if g.is_empty or not g.intersects(view):
                continue
            _draw(
                ax,
                g.boundary if hasattr(g, "boundary") else g,
                facecolor="none",
                edgecolor="#495057",
                linewidth=0.9,
                linestyle=(0, (6, 3)),
                zorder=5,
            )
            # the name where it does not cover what the map is about (its centre)
            inside = g.intersection(view).difference(shapely.Point(cx, cy).buffer(0.3 * min(w, h)))
            if not inside.is_empty and inside.area > 0.02 * view.area:
                p = inside.representative_point()
                ax.text(
                    p.x,
                    p.y,
                    a.name,
                    fontsize=9,
                    color="#343a40",
                    ha="center",
                    va="center",
                    zorder=6,
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
                )
            legend.setdefault("admin unit 行政区", "#495057")
        if not_observed is not None and not not_observed.is_empty:
            _draw(ax, proj(not_observed), facecolor="none", edgecolor="#495057", hatch="////", linewidth=0, zorder=7)
            legend.setdefault("not observed 未观测", "hatch")
        if region is not None:
            _draw(ax, proj(region), facecolor="none", edgecolor="#212529", linewidth=1.8, zorder=8)
            legend.setdefault("inspection region 检查范围", "#212529")
        for f in flags:
            colour = SEVERITY_COLOURS.get(f.get("severity"), SEVERITY_COLOURS[None])
            g = proj(f["geometry"])
            # small patches stay visible at any scale: at least ~4 px across
            min_m = 4 * w / (size_in[0] * dpi)
            # edged in its own colour: a road two pixels wide still shows as a line of that colour
            _draw(ax, g, facecolor=colour, edgecolor=colour, linewidth=1.3, zorder=9)
            if max(g.bounds[2] - g.bounds[0], g.bounds[3] - g.bounds[1]) < min_m:
                c = g.centroid
                ax.plot([c.x], [c.y], marker="o", markersize=5, color=colour, markeredgecolor="#212529", zorder=9)
            if label_flags and f.get("id") is not None and f["geometry"] is not highlight:
                b = g.bounds
                ax.text(b[2], b[3], f" #{f['id']}", fontsize=7, color="#212529", zorder=10, va="bottom", clip_on=True)
            legend.setdefault(SEVERITY_LABELS.get(f.get("severity"), str(f.get("severity"))), colour)
        if footprint is not None:
            g = proj(footprint)
            face, edge, label = FOOTPRINT_STYLE
            _draw(ax, g, facecolor=face, edgecolor=edge, linewidth=1.6, alpha=0.85, zorder=12)
            legend.setdefault(label, face)
            fb = g.bounds
            if max(fb[2] - fb[0], fb[3] - fb[1]) < 4 * w / (size_in[0] * dpi):  # too small to see: a marker
                ax.plot(
                    [g.centroid.x],
                    [g.centroid.y],
                    marker="s",
                    markersize=6,
                    color=face,
                    markeredgecolor=edge,
                    zorder=12,
                )
            for km in rings_km:
                ring = g.buffer(km * 1000.0, quad_segs=32)
                _draw(
                    ax, ring.boundary, facecolor="none", edgecolor=RING_COLOUR, linewidth=1.1, linestyle="--", zorder=13
                )
                top = ring.bounds[3]
                ax.text(
                    g.centroid.x,
                    top,
                    f"{km:g} km",
                    fontsize=7,
                    ha="center",
                    va="bottom",
                    color=RING_COLOUR,
                    zorder=13,
                    clip_on=True,
                    path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
                )
            if rings_km:
                legend.setdefault("distance rings 距离圈 " + "/".join(f"{k:g}" for k in rings_km) + " km", RING_COLOUR)
        if highlight is not None:
            g = proj(highlight)
            _draw(ax, g, facecolor="none", edgecolor="#000000", linewidth=1.1, zorder=11)
            # a ring around the site: a thin road or a small pit is found at a glance
            b = g.bounds
            radius = max(0.6 * math.hypot(b[2] - b[0], b[3] - b[1]), 0.06 * w)
            ax.add_patch(
                Circle(
                    (g.centroid.x, g.centroid.y),
                    radius,
                    facecolor="none",
                    edgecolor="#212529",
                    linewidth=1.2,
                    linestyle=(0, (4, 3)),
                    zorder=11,
                )
            )
        ax.set_xlim(extent[0], extent[2])
        ax.set_ylim(extent[1], extent[3])
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        _scale_bar(ax, extent)
        _north_arrow(ax)
        if title:
            fig.suptitle(title, fontsize=10, y=0.985)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)  # no bbox_inches: the axes stay where computed
        width, height = fig.canvas.get_width_height()
        x0, y0, x1, y1 = ax.get_window_extent().extents  # display pixels, origin bottom left
    return MapFigure(
        buf.getvalue(),
        crs,
        extent,
        (x0, height - y1, x1, height - y0),
        (width, height),
        [(c, label) for label, c in legend.items()],
    )


def bar_chart(
    labels: list[str],
    values: list[int],
    *,
    title: str,
    colour: str = "#1c7ed6",
    size_in: tuple[float, float] = (6.5, 2.2),
    dpi: int = 110,
) -> bytes:
    """A small bar chart (flags per month, say) as PNG bytes."""
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=size_in, dpi=dpi)
        ax = fig.add_subplot()
        ax.bar(range(len(values)), values, color=colour, width=0.6 if len(values) > 3 else 0.35)
        ax.set_xticks(
            range(len(labels)),
            labels,
            rotation=45 if len(labels) > 8 else 0,
            ha="right" if len(labels) > 8 else "center",
        )
        ax.set_title(title, fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
        cast(MaxNLocator, ax.yaxis.get_major_locator()).set_params(integer=True)  # an AutoLocator
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --- image chips --------------------------------------------------------------------------

# ESA WorldCover classes (the land-cover pairs' usual coding): official colours
WORLDCOVER = {
    10: "#006400",
    20: "#ffbb22",
    30: "#ffff4c",
    40: "#f096ff",
    50: "#fa0000",
    60: "#b4b4b4",
    70: "#f0f0f0",
    80: "#0064c8",
    90: "#0096a0",
    95: "#00cf75",
    100: "#fae6a0",
}


def chip_image(
    arr: np.ma.MaskedArray, outline_px, *, title: str, categorical: bool, size_in: float = 3.0, dpi: int = 110
) -> bytes:
    """A raster window as a small picture with the patch outline (``outline_px``: a shapely
    geometry in the window's pixel coordinates, column/row) on top."""
    from matplotlib.colors import ListedColormap

    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(size_in, size_in), dpi=dpi)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
        ax.set_facecolor("#dee2e6")  # no data
        rows, cols = arr.shape
        extent = (0, cols, rows, 0)
        if categorical:
            values = np.unique(arr.compressed()) if arr.count() else np.array([0])
            colours: list[Any]  # names or RGBA tuples
            if set(values.tolist()) <= set(WORLDCOVER) | {0}:
                colours = [WORLDCOVER.get(int(v), "#ffffff") for v in values]
            else:
                base = matplotlib.colormaps["tab20"]
                colours = ["#ffffff" if v == 0 else base(i % 20) for i, v in enumerate(values)]
            index = np.ma.masked_array(np.searchsorted(values, arr.filled(values[0])), mask=np.ma.getmaskarray(arr))
            ax.imshow(
                index,
                cmap=ListedColormap(colours),
                vmin=-0.5,
                vmax=len(values) - 0.5,
                interpolation="nearest",
                extent=extent,
            )
        else:
            ax.imshow(arr, cmap="viridis", interpolation="nearest", extent=extent)
        return _chip_png(fig, ax, outline_px, rows, cols, dpi, halo="#ffffff", width=0.7)


def _chip_png(fig, ax, outline_px, rows: int, cols: int, dpi: int, *, halo: str, width: float) -> bytes:
    """A chip's figure finished: the patch outline (black under ``halo``), no axes, as PNG."""
    if outline_px is not None and not outline_px.is_empty:
        _draw(ax, outline_px, facecolor="none", edgecolor="#000000", linewidth=2.0, zorder=5)
        _draw(ax, outline_px, facecolor="none", edgecolor=halo, linewidth=width, zorder=6)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_xticks([])
    ax.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def rgb_chip_image(arr: np.ma.MaskedArray, outline_px, *, size_in: float = 3.0, dpi: int = 110) -> bytes:
    """An image window (bands, rows, cols: three bands as red, green, blue, or one as grey),
    each band stretched between its 2nd and 98th percentile, with the patch outline on top."""
    bands = arr if arr.shape[0] == 3 else np.ma.stack([arr[0]] * 3)
    rows, cols = int(arr.shape[-2]), int(arr.shape[-1])
    rgb = np.zeros((rows, cols, 4), dtype=float)
    for i in range(3):
        b = bands[i].astype(float)
        valid = b.compressed()
        lo, hi = np.percentile(valid, (2, 98)) if valid.size else (0.0, 1.0)
        rgb[..., i] = np.clip((b.filled(lo) - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb[..., 3] = ~np.ma.getmaskarray(bands).any(axis=0)  # no data: transparent
    with matplotlib.rc_context(_rc()):
        fig = Figure(figsize=(size_in, size_in), dpi=dpi)
        ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
        ax.set_facecolor("#dee2e6")
        ax.imshow(rgb, interpolation="nearest", extent=(0, cols, rows, 0))
        return _chip_png(fig, ax, outline_px, rows, cols, dpi, halo="#ffff00", width=0.8)
