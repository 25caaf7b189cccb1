"""The problem sheet: one flag as the field team takes it to the site.

Everything on it comes from the store (flag, conflicts, observations, history, evidence
rows), the evidence folder (photos, as thumbnails) and the scans' product files (image chips
cut around the patch, when the file is still on disk): from the before/after imagery a product
names (sidecar or manifest fields, STAC assets ``imagery_before`` / ``imagery_after``) where
it names some, else from the change product itself.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import shapely
import shapely.affinity
from rasterio.windows import Window, from_bounds
from rasterio.windows import transform as window_transform

from ..auth import OPERATOR, Principal
from ..change import open_raster
from ..errors import RedlineError
from ..geo import STORAGE_CRS, apply_affine, reproject
from ..rules import PROTECTION_LAYERS
from ..store import FlagFilter, Store
from .context import map_image, printed_at
from .figures import chip_image, map_figure, rgb_chip_image
from .render import data_uri

CGCS2000 = "EPSG:4490"
MAX_PHOTOS = 6
THUMB_PX = 480
MAX_PHOTO_PIXELS = 60_000_000  # a 60 Mpx photo is a large camera's; beyond, no thumbnail
CHIP_MIN_PX = 24  # a chip shows at least this many pixels across
CHIP_MAX_PX = 400  # and is decimated beyond this
MAX_CHIPS = 4
IMAGERY_KEYS = {"before": "imagery_before", "after": "imagery_after"}  # sidecar / manifest fields
MAX_SIDECAR_BYTES = 1_000_000
MAX_MANIFESTS = 200  # JSON files looked at beside a pair's rasters


# --- image chips --------------------------------------------------------------------------


def _chip(path: str | Path, geom, title: str, *, imagery: bool = False) -> dict:
    """A window of the raster at ``path`` around ``geom`` (lon/lat), drawn with the patch
    outline; or why it is not available. ``imagery``: an image (three bands as colour, else the
    first as grey) rather than a change product's classes or probabilities."""
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
        bands = [1, 2, 3] if imagery and ds.count >= 3 else [1]
        # windowed (and decimated) read
        arr = ds.read(bands, window=win, masked=True, out_shape=(len(bands), *shape))
        categorical = not np.issubdtype(arr.dtype, np.floating)
        # the patch in the chip's pixel coordinates: ground -> window pixels -> chip pixels
        inv = ~window_transform(win, ds.transform)
        outline = apply_affine(g, inv)
        if scale > 1:
            outline = shapely.affinity.scale(outline, shape[1] / win.width, shape[0] / win.height, origin=(0, 0))
    if imagery:
        png = rgb_chip_image(arr, outline)
    else:
        png = chip_image(arr[0], outline, title=title, categorical=categorical)
    return {"title": title, "src": data_uri(png), "imagery": imagery}


def _json_file(path: Path):
    """A small JSON document from a local file, or None."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_SIDECAR_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def stac_imagery(location: str) -> dict[str, Path]:
    """The imagery a STAC item names as assets ``imagery_before`` / ``imagery_after``: the item
    at ``location`` (its JSON file, or ``collection.json#item-id`` within an ItemCollection), as
    the nightly batch recorded it. Local files only: a URL is never fetched."""
    path, _, item_id = location.partition("#")
    doc = _json_file(Path(path)) if "://" not in path else None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection" and item_id:
        doc = next((f for f in doc.get("features") or [] if isinstance(f, dict) and f.get("id") == item_id), None)
    assets = doc.get("assets") if isinstance(doc, dict) else None
    out = {}
    for role, key in IMAGERY_KEYS.items():
        href = (assets or {}).get(key, {}).get("href") if isinstance((assets or {}).get(key), dict) else None
        if not isinstance(href, str) or not href.strip():
            continue
        u = urlparse(href)
        if u.scheme not in ("", "file"):
            continue  # remote imagery: mirror it locally to have chips from it
        local = Path(unquote(u.path)) if u.scheme == "file" else Path(href)
        out[role] = local if local.is_absolute() else Path(path).parent / local
    return out


def product_imagery(scan: dict, locations: Sequence[str] = ()) -> dict[str, Path]:
    """The before/after imagery a scan's product names, if any: ``imagery_before`` /
    ``imagery_after`` (paths relative to the JSON) in the sidecar ``<raster>.json`` of one of
    its rasters, or in a manifest beside them that names its ``after`` raster; or the assets
    of those names of the STAC item it came from (``locations``: the batch ledger's)."""
    for location in locations:
        found = stac_imagery(location)
        if found:
            return found
    files = [Path(f) for f in scan.get("files") or []]
    if not files:
        return {}
    docs = [f.with_suffix(".json") for f in reversed(files)]
    folder = files[-1].parent
    if scan.get("mode") == "transition" and folder.is_dir():  # a pair's manifest sits beside its rasters
        docs += sorted(folder.glob("*.json"))[:MAX_MANIFESTS]
    for doc_path in docs:
        doc = _json_file(doc_path)
        if not isinstance(doc, dict) or not any(isinstance(doc.get(k), str) for k in IMAGERY_KEYS.values()):
            continue
        if doc_path not in docs[: len(files)]:  # a manifest: only the one naming this pair
            after = doc.get("after") or doc.get("path")
            if not isinstance(after, str) or (doc_path.parent / after).resolve() != files[-1].resolve():
                continue
        return {
            role: doc_path.parent / doc[key]
            for role, key in IMAGERY_KEYS.items()
            if isinstance(doc.get(key), str) and doc[key].strip()
        }
    return {}


def image_chips(
    flag: dict, observations: list[dict], scans_by_id: dict[int, dict], locations: dict[int, list[str]] | None = None
) -> list[dict]:
    """Before/after chips: from the imagery a product names (sidecar or manifest fields, or
    STAC assets ``imagery_before`` / ``imagery_after``; ``locations``: where the batch found
    each scan's product, by scan id), else from the products themselves: a land-cover pair's
    two rasters, or the change product of the first and the last observation."""
    chips: list[dict] = []
    used: set[int] = set()
    pair = next(
        (o for o in reversed(observations) if scans_by_id.get(o["scan_id"], {}).get("mode") == "transition"), None
    )
    picks = ([pair] if pair is not None else []) + ([observations[0], observations[-1]] if observations else [])
    geom = flag["geometry"]
    for o in picks:
        scan = scans_by_id.get(o["scan_id"])
        if scan is None or scan["id"] in used or len(chips) >= MAX_CHIPS:
            continue
        files = scan.get("files") or []
        if o is pair and len(files) < 2:
            continue
        used.add(scan["id"])
        pid = scan["product_id"]
        imagery = product_imagery(scan, (locations or {}).get(scan["id"], []))
        if imagery:
            dates = {"before": scan.get("acquired_before") or "", "after": scan["acquired_after"]}
            for role, path in imagery.items():
                chips.append(_chip(path, geom, f"imagery {role} {dates[role]} · {pid}", imagery=True))
        elif o is pair:
            chips.append(_chip(files[0], geom, f"before {scan.get('acquired_before') or ''} · {pid}"))
            chips.append(_chip(files[-1], geom, f"after {scan['acquired_after']} · {pid}"))
        else:
            title = f"{scan.get('acquired_before') or '?'} → {scan['acquired_after']} · {pid}"
            chips.append(
                _chip(files[-1], geom, title)
                if files
                else {"title": title, "missing": "not available: the scan names no file"}
            )
    return chips


# --- evidence -----------------------------------------------------------------------------


def _thumbnail(path: Path) -> str | None:
    """A JPEG thumbnail of a photo as a data URI (None when it cannot be read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        import pillow_heif

        pillow_heif.register_heif_opener()  # phones' HEIC photos
    except ImportError:  # pragma: no cover - a dependency; HEIC photos then show as a caption
        pass
    try:
        with Image.open(path) as im:
            if im.format not in ("JPEG", "PNG", "HEIF") or im.width * im.height > MAX_PHOTO_PIXELS:
                return None  # a small file may still decode to gigabytes: not on a report
            im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a reduced scale
            rgb = im.convert("RGB")
            rgb.thumbnail((THUMB_PX, THUMB_PX))
            buf = io.BytesIO()
            rgb.save(buf, "JPEG", quality=80)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError):
        return None
    return data_uri(buf.getvalue(), "image/jpeg")


# what the sheet prints of each piece of evidence: who, when, where (and how far from the flag)
EVIDENCE_KEYS = (
    "id",
    "original_name",
    "content_type",
    "lon",
    "lat",
    "taken_at",
    "distance_m",
    "warning",
    "note",
    "actor",
    "at",
)


def evidence_items(store: Store, evidence_dir: Path | None, flag_id: int) -> list[dict]:
    out: list[dict[str, Any]] = []
    for e in store.evidence(flag_id):
        item = {k: e.get(k) for k in EVIDENCE_KEYS}
        item["src"] = None
        if (
            evidence_dir is not None
            and e["content_type"] in ("image/jpeg", "image/png", "image/heic")
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


def scan_locations(store: Store) -> dict[int, list[str]]:
    """Where the nightly batch found each scan's product (a STAC item's location among them)."""
    out: dict[int, list[str]] = {}
    for e in store.ledger_entries(state="done"):
        if e.get("scan_id") is not None and e.get("location"):
            out.setdefault(e["scan_id"], []).append(e["location"])
    return out


def sheet_context(
    store: Store,
    flag_id: int,
    *,
    principal: Principal = OPERATOR,
    evidence_dir: Path | None = None,
    locations: dict[int, list[str]] | None = None,
    basemap_url: str | None = None,
) -> dict:
    """What one problem sheet shows (``principal`` must be allowed to see the flag);
    ``locations``: :func:`scan_locations`, when the caller prints many sheets; ``basemap_url``:
    an XYZ tile template drawn under the map (Settings)."""
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
        basemap_url=basemap_url,
    )
    history = [{**h, "summary": _summary(h)} for h in store.history(flag_id)]
    return {
        "flag": {k: v for k, v in flag.items() if k != "geometry"},
        "generated_at": printed_at(),
        "location": _location(geom),
        "conflicts": store.conflicts(flag_id),
        "observations": [{k: v for k, v in o.items() if k != "geometry"} for o in observations],
        "history": history,
        "evidence": evidence_items(store, evidence_dir, flag_id),
        "map": map_image(fig),
        "chips": image_chips(flag, observations, scans, scan_locations(store) if locations is None else locations),
    }
