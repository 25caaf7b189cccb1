"""One scan: a change product → patches → conflicts → flags, recorded once.

The product is read and judged entirely before the store is touched; the
writes then happen in one transaction, so a crash leaves the store as it was
and the scan ledger (keyed on the content checksum) makes a re-run a no-op.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import shapely
from rasterio.warp import transform_bounds

from . import vocab
from .change import ChangeProduct, ProductReader
from .clock import now
from .config import DEFAULTS, Settings
from .errors import InputError, NoOverlapError
from .geo import STORAGE_CRS
from .overlay import Assessment, Overlay
from .patches import PatchExtractor
from .recovery import RecoveryCheck
from .rules import PROTECTION_LAYERS, Rules, load_rules
from .store import FlagFilter, Store


@dataclass
class ScanResult:
    product_id: str
    checksum: str
    skipped: bool = False
    scan_id: int | None = None
    patches: int = 0
    conflicts: int = 0
    permitted: int = 0
    new_flags: list[int] = field(default_factory=list)
    observed_flags: list[int] = field(default_factory=list)
    observed_fraction: float | None = None
    seconds: float = 0.0
    windows: int = 0
    windows_with_change: int = 0
    recovery: list[dict] = field(default_factory=list)  # rectified flags this scan saw: recovered or persists

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def scan_product(
    store: Store,
    product: ChangeProduct,
    *,
    settings: Settings = DEFAULTS,
    rules: Rules | None = None,
    progress: Callable[[int, int], None] | None = None,
    make_extractor: Callable[..., PatchExtractor] | None = None,
    on_commit: Callable[[Store, ScanResult], None] | None = None,
) -> ScanResult:
    """Scan ``product`` once; a product already in the ledger is skipped.

    ``make_extractor(reader, mmu_ha=, footprint_cell=)`` builds the patch extractor
    (default :class:`PatchExtractor`, serial; ``redline.batch.ParallelExtractor`` runs
    on a Dask cluster). ``on_commit(store, result)`` runs inside the scan's transaction,
    so what it writes (the nightly ledger) commits together with the flags or not at all.
    """
    rules = rules or load_rules(settings.rules_path)
    t0 = time.perf_counter()
    started = now()
    with ProductReader(product) as reader:  # validates raster, CRS and tables first
        checksum = scan_identity(product, settings)
        result = ScanResult(product.product_id, checksum)
        if store.scan_by_checksum(checksum):
            result.skipped = True
            return result
        versions = {lv["kind"]: lv["version"] for lv in store.layer_versions()}
        if not any(k in versions for k in PROTECTION_LAYERS):
            raise InputError("no red-line or reserve layer is loaded; run `redline layers load redline FILE` first")
        bbox = transform_bounds(reader.crs, STORAGE_CRS, *reader.bounds, densify_pts=21)
        zones = store.zones(vocab.LAYER_KINDS, bbox=bbox)
        if not any(z.kind in PROTECTION_LAYERS for z in zones):
            raise NoOverlapError(
                f"{product.path}: raster (lon/lat bounds {', '.join(f'{v:.4f}' for v in bbox)}) "
                "does not overlap any loaded red-line or reserve zone"
            )
        overlay = Overlay(zones, rules, product.acquired_after)
        recovery = RecoveryCheck(store, bbox, product.acquired_after)
        extractor = (make_extractor or PatchExtractor)(
            reader, mmu_ha=settings.mmu_ha, footprint_cell=settings.footprint_cell
        )
        tick = (lambda n: progress(n, extractor.windows_total)) if progress else None
        assessments: list[Assessment] = []
        for batch in extractor.run(tick):
            result.patches += len(batch)
            assessments.extend(overlay.assess(batch))
            recovery.add(batch)
        # one order whatever the extractor (serial, strips, cluster): flag ids do not depend on it
        assessments.sort(key=_canonical)
        footprint = extractor.footprint()
        result.recovery = recovery.verdicts(footprint)
        result.observed_fraction = extractor.observed_pixels / extractor.total_pixels
        result.windows, result.windows_with_change = extractor.windows_total, extractor.windows_with_change

    scan = {
        **product.provenance(),
        "checksum": checksum,
        "started_at": started,
        "finished_at": now(),
        "state": "done",
        "layer_versions": versions,
        "rules_version": rules.version,
        "observed_fraction": result.observed_fraction,
        "stats": {"patches": result.patches, "conflict_patches": len(assessments), "mmu_ha": settings.mmu_ha},
    }
    with store.transaction():
        if store.scan_by_checksum(checksum):  # another process recorded it meanwhile
            result.skipped = True
            return result
        result.scan_id = store.insert_scan(scan, footprint)
        this_scan: dict[int, tuple] = {}
        for a in assessments:
            _record(store, result, a, product, versions, rules, this_scan)
        recovery.record(store, result.recovery, result.scan_id, product)
        if on_commit is not None:
            on_commit(store, result)
    result.seconds = time.perf_counter() - t0
    return result


def _canonical(a: Assessment):
    g = a.patch.geometry
    return (*shapely.bounds(g), a.patch.pixels, a.patch.activity, shapely.normalize(g).wkb)


def flag_fields(a: Assessment, versions: dict, rules: Rules) -> dict:
    """The fields of a flag (redline.model.Flag) that an assessment decides: the patch's own
    and the judged ones (``FLAG_JUDGED``: zone, admin unit, permit, rule, versions)."""
    top = a.strictest
    return {
        "severity": top.severity,
        "activity": a.patch.activity,
        "confidence": a.patch.confidence,
        "score": a.patch.score,
        "area_ha": round(a.patch.area_ha, 4),
        "area_mu": round(vocab.hectares_to_mu(a.patch.area_ha), 3),
        "zone_layer": top.zone.kind,
        "zone_name": top.zone.name,
        "zone_regime": top.zone.regime,
        "admin_code": a.admin.code if a.admin else None,
        "admin_name": a.admin.name if a.admin else None,
        "permit_id": a.permit.id if a.permit else None,
        "layer_versions": versions,
        "rules_version": rules.version,
        "rule": top.rule,
    }


# Patches that merely share an edge overlap by reprojection slivers (~1e-15 deg2):
# an observation needs a real overlap, a share of the smaller of the two shapes.
MIN_OVERLAP_SHARE = 1e-3


def scan_identity(product: ChangeProduct, settings: Settings) -> str:
    """The ledger key of a scan: the product's content and parameters, and the settings that
    change what a scan finds (minimum mapping unit, footprint cell)."""
    h = hashlib.sha256(product.checksum().encode())
    h.update(f"|mmu_ha={settings.mmu_ha!r}|footprint_cell={settings.footprint_cell}".encode())
    return h.hexdigest()


def match_flag(store: Store, geom, this_scan: dict[int, tuple]) -> dict | None:
    """The existing flag this patch is a new observation of: the largest overlap wins. A flag
    this scan already re-observed is matched by its geometry *before* the scan (the first
    part of a field split by a new track must not hide the flag from the second part)."""
    rows = {f["id"]: f for f in store.flags(FlagFilter(bbox=tuple(shapely.bounds(geom))), with_geometry=True)}
    for fid, (before, _) in this_scan.items():
        if fid not in rows and before is not None and shapely.intersects(before, geom):
            rows[fid] = store.flag(fid)
    best, best_overlap = None, 0.0
    for fid, f in rows.items():
        before = this_scan[fid][0] if fid in this_scan and this_scan[fid][0] is not None else f["geometry"]
        overlap = shapely.intersection(before, geom).area
        if overlap > best_overlap and overlap > MIN_OVERLAP_SHARE * min(geom.area, before.area):
            best, best_overlap = f, overlap
    return best


def _record(store, result: ScanResult, a: Assessment, product, versions, rules, this_scan: dict) -> None:
    patch, day = a.patch, product.acquired_after
    fields = flag_fields(a, versions, rules)
    if a.permit:
        result.permitted += 1
    else:
        result.conflicts += 1
    flag = match_flag(store, patch.geometry, this_scan)
    if flag is None:
        fid = store.insert_flag(
            {
                **fields,
                "status": "permitted" if a.permit else "new",
                "first_seen": day,
                "last_seen": day,
                "n_observations": 1,
            },
            patch.geometry,
        )
        store.audit(
            fid,
            "scan",
            "created",
            {"scan_id": result.scan_id, "product_id": product.product_id, "status": "permitted" if a.permit else "new"},
        )
        result.new_flags.append(fid)
        geom, before = patch.geometry, None
    else:
        fid = flag["id"]
        latest = day.isoformat() >= flag["last_seen"]
        geom, before = patch.geometry, flag["geometry"]
        if fid in this_scan:  # several patches of one scan re-observe the same flag
            before = this_scan[fid][0]
            geom = shapely.union_all([this_scan[fid][1], patch.geometry])
        update = {
            "first_seen": min(flag["first_seen"], day.isoformat()),
            "last_seen": max(flag["last_seen"], day.isoformat()),
            "n_observations": flag["n_observations"] + 1,
        }
        if latest:
            update.update({k: v for k, v in fields.items() if k != "permit_id" or v is not None})
            if fid in this_scan:
                update["area_ha"] = round(flag["area_ha"] + patch.area_ha, 4)
                update["area_mu"] = round(vocab.hectares_to_mu(update["area_ha"]), 3)
        store.update_flag(fid, update, geom if latest else None)
        store.audit(
            fid,
            "scan",
            "observed",
            {"scan_id": result.scan_id, "product_id": product.product_id, "status": flag["status"]},
        )
        if fid not in result.observed_flags:
            result.observed_flags.append(fid)
    this_scan[fid] = (before, geom)  # (the flag's geometry before this scan, what this scan saw of it)
    store.add_observation(
        {
            "flag_id": fid,
            "scan_id": result.scan_id,
            "observed_on": day,
            "activity": patch.activity,
            "confidence": patch.confidence,
            "score": patch.score,
            "area_ha": round(patch.area_ha, 4),
            "pixels": patch.pixels,
        },
        patch.geometry,
    )
    if flag is None or day.isoformat() >= flag["last_seen"]:
        store.replace_conflicts(fid, [c.record() for c in a.conflicts])
