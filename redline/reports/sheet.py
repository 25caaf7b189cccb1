"""The problem sheet: one flag as the field team takes it to the site.

Everything on it comes from the store (flag, conflicts, observations, history, evidence
rows), the evidence folder (photos, as thumbnails) and the scans' product files (image chips
cut around the patch, when the file is still on disk).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import shapely
import shapely.affinity
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from ..auth import OPERATOR, Principal
from ..change import open_raster
from ..clock import now
from ..errors import RedlineError
from ..geo import STORAGE_CRS, apply_affine, reproject
from ..rules import PROTECTION_LAYERS
from ..store import FlagFilter, Store
from .figures import chip_image, map_figure
from .render import data_uri

CGCS2000 = "EPSG:4490"
MAX_PHOTOS = 6
THUMB_PX = 480
MAX_PHOTO_PIXELS = 60_000_000  # a 60 Mpx photo is a large camera's; beyond, no thumbnail
CHIP_MIN_PX = 24  # a chip shows at least this many pixels across
CHIP_MAX_PX = 400  # and is decimated beyond this
MAX_CHIPS = 4


# --- image chips --------------------------------------------------------------------------


def _chip(path: str, geom, title: str) -> dict:
    """A window of the raster at ``path`` around ``geom`` (lon/lat), drawn with the patch
    outline; or why it is not available."""
    name = Path(path).name
    if not Path(path).is_file():
        return {"title": title, "missing": f"not available: {name} is no longer on disk"}
    try:
        ds = open_raster(Path(path))
    except (RedlineError, OSError) as exc:
        return {"title": title, "missing": f"not available: {name} cannot be read ({str(exc)[:120]})"}
    with ds:
        g = reproject(geom, STORAGE_CRS, ds.crs)
        minx, miny, maxx, maxy = g.bounds
        res = max(abs(ds.transform.a), abs(ds.transform.e))
        half = max(maxx - minx, maxy - miny, CHIP_MIN_PX * res) * 1.0  # the patch and as much around it
        cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
        win = from_bounds(cx - half, cy - half, cx + half, cy + half, ds.transform)
        win = win.round_offsets().round_lengths().intersection(Window(0, 0, ds.width, ds.height))
        if win.width < 1 or win.height < 1:
            return {"title": title, "missing": f"not available: the patch lies outside {name}"}
        scale = max(1, int(np.ceil(max(win.width, win.height) / CHIP_MAX_PX)))
        shape = (max(1, int(win.height // scale)), max(1, int(win.width // scale)))
        arr = ds.read(1, window=win, masked=True, out_shape=shape)  # windowed (and decimated) read
        categorical = not np.issubdtype(arr.dtype, np.floating)
        # the patch in the chip's pixel coordinates: ground -> window pixels -> chip pixels
        inv = ~window_transform(win, ds.transform)
        outline = apply_affine(g, inv)
        if scale > 1:
            outline = shapely.affinity.scale(outline, shape[1] / win.width, shape[0] / win.height, origin=(0, 0))
    png = chip_image(arr, outline, title=title, categorical=categorical)
    return {"title": title, "src": data_uri(png)}


def image_chips(flag: dict, observations: list[dict], scans_by_id: dict[int, dict]) -> list[dict]:
    """Before/after chips: a land-cover pair's two rasters, or the change product of the first
    and the last observation."""
    chips: list[dict] = []
    used: set[int] = set()
    pair = next(
        (o for o in reversed(observations) if scans_by_id.get(o["scan_id"], {}).get("mode") == "transition"), None
    )
    picks = [observations[0], observations[-1]] if observations else []
    if pair is not None:
        s = scans_by_id[pair["scan_id"]]
        files = s.get("files") or []
        if len(files) >= 2:
            chips.append(
                _chip(files[0], flag["geometry"], f"before {s.get('acquired_before') or ''} · {s['product_id']}")
            )
            chips.append(_chip(files[-1], flag["geometry"], f"after {s['acquired_after']} · {s['product_id']}"))
            used.add(s["id"])
    for o in picks:
        scan = scans_by_id.get(o["scan_id"])
        if scan is None or scan["id"] in used or len(chips) >= MAX_CHIPS:
            continue
        used.add(scan["id"])
        files = scan.get("files") or []
        title = f"{scan.get('acquired_before') or '?'} → {scan['acquired_after']} · {scan['product_id']}"
        chips.append(
            _chip(files[-1], flag["geometry"], title)
            if files
            else {"title": title, "missing": "not available: the scan names no file"}
        )
    return chips


# --- evidence -----------------------------------------------------------------------------


def _thumbnail(path: Path) -> str | None:
    """A JPEG thumbnail of a photo as a data URI (None when it cannot be read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "PNG") or im.width * im.height > MAX_PHOTO_PIXELS:
                return None  # a small file may still decode to gigabytes: not on a report
            im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a reduced scale
            rgb = im.convert("RGB")
            rgb.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            rgb.save(buf, "JPEG", quality=80)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return data_uri(buf.getvalue(), "image/jpeg")


def evidence_items(store: Store, evidence_dir: Path | None, flag_id: int) -> list[dict]:
    out: list[dict[str, Any]] = []
    for e in store.evidence(flag_id):
        item = {k: e.get(k) for k in ("id", "original_name", "content_type", "lon", "lat", "note", "actor", "at")}
        item["src"] = None
        if (
            evidence_dir is not None
            and e["content_type"] in ("image/jpeg", "image/png")
            and sum(1 for i in out if i["src"]) < MAX_PHOTOS
        ):
            path = Path(evidence_dir) / str(int(flag_id)) / e["stored_name"]
            if path.is_file():
                item["src"] = _thumbnail(path)
        out.append(item)
    return out


# --- the sheet ----------------------------------------------------------------------------


def _location(geom) -> dict:
    c = geom.centroid if geom.geom_type != "Point" else geom
    # CGCS2000 and WGS84 differ by centimetres; the transformation is still done, not assumed
    p = reproject(c, STORAGE_CRS, CGCS2000)
    return {"lon": round(p.x, 6), "lat": round(p.y, 6)}


def _summary(entry: dict) -> str:
    """An audit entry's detail in words."""
    d = entry.get("detail") or {}
    if entry["action"] == "status":
        return f"{d.get('from')} → {d.get('to')}" + (f": {d['note']}" if d.get("note") else "")
    return ", ".join(f"{k} {v}" for k, v in d.items() if v is not None and v != "")


def sheet_context(
    store: Store, flag_id: int, *, principal: Principal = OPERATOR, evidence_dir: Path | None = None
) -> dict:
    """What one problem sheet shows (``principal`` must be allowed to see the flag)."""
    flag = store.flag(flag_id)
    principal.require_flag(flag)
    geom = flag["geometry"]
    observations = store.observations(flag_id)
    scans = {s["id"]: s for s in store.scans(bbox=geom.bounds)}
    around = geom.buffer(0.01)
    zones = store.zones(PROTECTION_LAYERS + ("permit",), bbox=around.bounds)
    admin = store.zones(("admin",), bbox=around.bounds)
    # neighbours on the map: only flags this principal may see
    others = [f for f in store.flags(principal.scope(FlagFilter(bbox=around.bounds))) if f["id"] != flag_id]
    fig = map_figure(
        focus=geom,
        zones=zones,
        admin=admin,
        flags=[*others, flag],
        highlight=geom,
        min_span_m=3000,
        pad=0.6,
        size_in=(7.0, 6.0),
    )
    history = [{**h, "summary": _summary(h)} for h in store.history(flag_id)]
    return {
        "flag": {k: v for k, v in flag.items() if k != "geometry"},
        "generated_at": now()[:16].replace("T", " ") + " UTC",
        "location": _location(geom),
        "conflicts": store.conflicts(flag_id),
        "observations": [{k: v for k, v in o.items() if k != "geometry"} for o in observations],
        "history": history,
        "evidence": evidence_items(store, evidence_dir, flag_id),
        "map": {"src": data_uri(fig.png), "legend": fig.legend},
        "chips": image_chips(flag, observations, scans),
    }
