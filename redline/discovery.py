"""Where nightly products come from: watched folders and STAC catalogs / ItemCollections.

Each discovered product is a :class:`Candidate`: the files it is made of and how to
turn it into a :class:`~redline.change.ChangeProduct`. Its ledger identity
(:meth:`Candidate.fingerprint`) is a digest of the *content* of every one of those
files (raster(s), sidecar or manifest, class / transition tables, the STAC item's
metadata), so a fixed file is a new product while a copied or touched one is not.
:meth:`Candidate.stamp` (paths, sizes, modification times) lets a run skip hashing
files it has already seen unchanged.

Folder conventions (the same as ``redline scan``):

- every ``*.tif`` / ``*.tiff`` is a product, described by its ``REDLINE_*`` tags and an
  optional sidecar ``<name>.json``;
- a ``*.json`` with an ``after`` (or ``path``) key and no raster of the same name is a
  product manifest (e.g. a land-cover pair); rasters it names are not products by themselves;
- other JSON files, hidden files and files still being written (modified less than
  ``settle`` seconds ago) are left alone.

STAC items (``pystac``; local files or ``file://`` assets): the raster is the asset
``change`` (or ``data``), a pair is ``before`` + ``after``; tables are the assets
``classes`` / ``transitions``; ``redline:mode``, ``redline:activity``, ``redline:thresholds``,
``redline:scale``, ``redline:sensor`` properties are honoured; dates come from
``start_datetime`` / ``end_datetime`` or ``datetime``; the sensor from ``platform`` and
``instruments``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from .change import ChangeProduct, require_inputs, resolve_product
from .errors import InputError, MissingFileError

RASTER_SUFFIXES = (".tif", ".tiff")


@dataclass
class Candidate:
    source: str  # the watched folder or STAC document it was found in
    item_id: str  # file stem or STAC item id (the product id may differ)
    location: str  # raster / manifest path, or STAC item href
    files: list[Path]  # every input file that exists
    resolve: Callable[[], ChangeProduct]
    extra: str = ""  # metadata that is not in a file (a STAC item's JSON)
    error: str | None = None  # known to be unusable at discovery
    acquired: str = "9999-12-31"  # acquisition day when known: nights scan in time order
    _fingerprint: str | None = field(default=None, repr=False)

    def stamp(self) -> str:
        parts = [self.location]
        for p in self.files:
            try:
                st = p.stat()
                parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{p}:missing")
        parts.append(hashlib.sha256(self.extra.encode()).hexdigest())
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def fingerprint(self) -> str:
        """Content identity: what the ledger keys on."""
        if self._fingerprint is None:
            h = hashlib.sha256(b"redline-product-v1\n")
            for p in self.files:
                f = hashlib.sha256()
                try:
                    with open(p, "rb") as fh:
                        while chunk := fh.read(1 << 20):
                            f.update(chunk)
                    h.update(f.hexdigest().encode())
                except OSError as exc:
                    h.update(f"unreadable {p.name}: {exc.errno}".encode())
            h.update(self.extra.encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def _settled(path: Path, settle: float, now: float) -> bool:
    try:
        return now - path.stat().st_mtime >= settle
    except OSError:
        return False


def _product_files(product: ChangeProduct, first: list[Path]) -> list[Path]:
    files = list(first)
    for p in (product.before_path, product.path, product.class_table, product.transition_table):
        if p is not None and Path(p).resolve() not in files:
            files.append(Path(p).resolve())
    return files


def _folder_candidate(source: str, path: Path, sidecar: Path | None) -> Candidate:
    first = [path] + ([sidecar] if sidecar else [])
    files, acquired = list(first), Candidate.acquired
    try:  # the tables a product names are part of it; a product that does not resolve fails later
        product = resolve_product(path)
        files, acquired = _product_files(product, first), product.acquired_after.isoformat()
    except Exception:  # noqa: BLE001 - discovery never fails on one product
        pass
    return Candidate(source, path.stem, str(path), files, lambda: resolve_product(path), acquired=acquired)


def _manifest(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and ("after" in doc or "path" in doc) else None


def folder_candidates(folder: Path, settle: float = 0.0) -> tuple[list[Candidate], list[str]]:
    """Products in ``folder`` (recursively) and the files left for a later run (not settled)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: watched folder does not exist")
    source, now = str(folder.resolve()), time.time()
    rasters, jsons = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            p = (Path(dirpath) / name).resolve()
            if p.suffix.lower() in RASTER_SUFFIXES:
                rasters.append(p)
            elif p.suffix.lower() == ".json":
                jsons.append(p)
    raster_set = set(rasters)
    sidecars = {p for p in jsons if any(p.with_suffix(s) in raster_set for s in RASTER_SUFFIXES)}
    out, unsettled, named = [], [], set()
    for p in jsons:
        if p in sidecars or (doc := _manifest(p)) is None:
            continue
        for key in ("after", "before", "path"):
            if isinstance(doc.get(key), str):
                named.add((p.parent / doc[key]).resolve())
        if not _settled(p, settle, now):
            unsettled.append(str(p))
            continue
        out.append(_folder_candidate(source, p, None))
    for p in rasters:
        if p in named:
            continue
        sidecar = next((j for j in (p.with_suffix(".json"),) if j in sidecars), None)
        if not all(_settled(f, settle, now) for f in [p] + ([sidecar] if sidecar else [])):
            unsettled.append(str(p))
            continue
        out.append(_folder_candidate(source, p, sidecar))
    # a manifest's files must have settled too
    ready = []
    for c in out:
        if all(_settled(f, settle, now) for f in c.files if f.exists()):
            ready.append(c)
        else:
            unsettled.append(c.location)
    return ready, unsettled


# --- STAC --------------------------------------------------------------------------------


def _local(href: str) -> Path:
    u = urlparse(href)
    if u.scheme in ("", "file") or (len(u.scheme) == 1 and href[1:3] in (":/", ":\\")):  # also C:/ paths
        return Path(unquote(u.path) if u.scheme == "file" else href)
    raise InputError(f"asset {href} is not a local file; mirror remote assets to a local or mounted folder")


def _day(value):
    if value is None:
        return None
    return str(value)[:10]


def product_from_item(item) -> ChangeProduct:
    """A ChangeProduct from a pystac Item (see module docstring for the conventions)."""
    props, assets = item.properties, item.assets

    def href(key):
        return _local(assets[key].get_absolute_href() or assets[key].href) if key in assets else None

    mode = props.get("redline:mode") or ("transition" if "before" in assets else "class")
    path = href("after") or href("change") or href("data")
    if path is None:
        raise InputError(f"STAC item {item.id}: no 'change', 'data' or 'after' asset")
    end = props.get("end_datetime") or props.get("datetime") or (item.datetime.isoformat() if item.datetime else None)
    sensor = (
        props.get("redline:sensor")
        or " ".join(x for x in (props.get("platform"), "/".join(props.get("instruments") or [])) if x)
        or None
    )
    meta = {
        "product_id": item.id,
        "mode": mode,
        "path": path,
        "before_path": href("before"),
        "class_table": href("classes"),
        "transition_table": href("transitions"),
        "acquired_before": _day(props.get("start_datetime")) if props.get("end_datetime") else None,
        "acquired_after": _day(end),
        "sensor": sensor,
        "activity": props.get("redline:activity"),
        "scale": props.get("redline:scale"),
        "thresholds": props.get("redline:thresholds"),
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    try:
        product = ChangeProduct.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"STAC item {item.id}: {'.'.join(map(str, err['loc'])) or 'item'}: {err['msg']}") from None
    return require_inputs(
        product,
        f"STAC item {item.id}",
        f"asset of STAC item {item.id}",
        "a 'classes' asset (class table CSV)",
        "'before', 'after' and 'transitions' assets",
    )


def _local_stac_io():
    """pystac I/O that reads local files only: a catalog's links never make us fetch a URL."""
    from pystac.stac_io import DefaultStacIO

    class LocalStacIO(DefaultStacIO):
        def read_text_from_href(self, href: str) -> str:
            return super().read_text_from_href(str(_local(href)))

    return LocalStacIO()


def _stac_items(href: str) -> Iterator:
    import pystac

    io = _local_stac_io()

    try:
        doc = json.loads(Path(_local(href)).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{href}: not a readable STAC document ({exc})") from None
    try:
        if doc.get("type") == "FeatureCollection":
            yield from pystac.ItemCollection.from_file(href, stac_io=io)
        elif doc.get("type") == "Feature":
            yield pystac.Item.from_file(href, stac_io=io)
        else:
            # neither a FeatureCollection nor a Feature: a catalog or collection
            yield from cast(pystac.Catalog, pystac.read_file(href, stac_io=io)).get_items(recursive=True)
    except pystac.STACError as exc:
        raise InputError(f"{href}: not a STAC catalog, collection, item or ItemCollection ({exc})") from None


def stac_candidates(href: str | Path) -> list[Candidate]:
    href = str(Path(href).resolve()) if "://" not in str(href) else str(href)
    out = []
    for item in _stac_items(href):
        d = item.to_dict(include_self_link=False, transform_hrefs=False)
        extra = json.dumps(
            {
                "id": d.get("id"),
                "properties": d.get("properties"),
                "assets": {k: v.get("href") for k, v in (d.get("assets") or {}).items()},
            },
            sort_keys=True,
            default=str,
        )
        files, error = [], None
        for _key, asset in sorted(item.assets.items()):
            try:
                p = _local(asset.get_absolute_href() or asset.href)
            except InputError as exc:
                error = str(exc)
                continue
            if p.exists():
                files.append(p.resolve())
        location = item.get_self_href() or f"{href}#{item.id}"
        props = item.properties
        day = _day(props.get("end_datetime") or props.get("datetime")) or Candidate.acquired
        out.append(
            Candidate(href, item.id, location, files, partial(product_from_item, item), extra, error, acquired=day)
        )
    return out


def discover(folders: list[Path], stac: list[str], settle: float = 0.0) -> tuple[list[Candidate], list[str]]:
    """Every candidate of every source, in a stable order, and the files not settled yet."""
    cands, unsettled = [], []
    for folder in folders:
        c, u = folder_candidates(folder, settle)
        cands += c
        unsettled += u
    for href in stac:
        cands += stac_candidates(href)
    # in acquisition order, so that a place's observations are recorded oldest first
    cands.sort(key=lambda c: (c.acquired, c.location))
    return cands, unsettled
