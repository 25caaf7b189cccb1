"""Scans as asynchronous jobs, on products already in the server's data folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, overload

from fastapi import APIRouter, Request, Response

from redline.change import resolve_product
from redline.errors import InputError, PermissionDeniedError, RedlineError
from redline.jobs import hide_paths, new_job, run_scan_job, status_info

from .deps import SettingsDep, StoreDep, requires
from .schemas import Job, ScanRequest

router = APIRouter(tags=["scans"])

OUTSIDE = "is outside the server's data folder"
# keys of a product manifest (or sidecar JSON) that name files
MANIFEST_PATHS = ("path", "after", "before", "before_path", "class_table", "transition_table")


def _under(root: Path, path: Path) -> Path | None:
    """``path`` inside ``root``, or None. Decided first from the text alone (before the file
    system is touched, so that the answer cannot tell whether a path outside exists), then
    with symbolic links followed (a link inside may point out)."""
    lexical = Path(os.path.normpath(root / path))
    if not lexical.is_relative_to(root):
        return None
    real = Path(os.path.realpath(lexical))  # links followed; unlike Path.resolve, never stats the target
    return real if real.is_relative_to(root) else None


@overload
def _inside(root: Path, relative: str) -> Path: ...
@overload
def _inside(root: Path, relative: None) -> None: ...
@overload
def _inside(root: Path, relative: str | None) -> Path | None: ...
def _inside(root: Path, relative: str | None) -> Path | None:
    """Resolve a user-given path under ``root``; anything that escapes it is refused."""
    if relative is None:
        return None
    if "\x00" in relative or Path(relative).is_absolute():
        raise PermissionDeniedError("paths are relative to the server's data folder")
    path = _under(root, Path(relative))
    if path is None:
        raise PermissionDeniedError(f"{relative!r} {OUTSIDE}")
    return path


def _check_manifest(root: Path, product: Path) -> None:
    """Files named by a product's manifest (or a raster's sidecar JSON) must be inside the data
    folder too; checked before the product is resolved, which would otherwise answer 404 for
    a missing file outside and so tell which exist."""
    if product == root:
        return  # the folder itself: resolve_product refuses it
    manifest = product if product.suffix.lower() == ".json" else product.with_suffix(".json")
    if _under(root, manifest) is None:
        raise PermissionDeniedError(f"{manifest.name}: the product's description {OUTSIDE}")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no manifest, or one resolve_product will refuse with its own message
    if not isinstance(doc, dict):
        return
    for key in MANIFEST_PATHS:
        value = doc.get(key)
        if isinstance(value, str) and value and ("\x00" in value or _under(root, manifest.parent / value) is None):
            raise PermissionDeniedError(f"{manifest.name}: {key} {OUTSIDE}")


# a started job: 201, its statusInfo, and where to follow it (here and in OGC API – Processes)
JOB_CREATED: dict = dict(
    status_code=201,
    response_model=Job,
    responses={201: {"headers": {"Location": {"description": "The job", "schema": {"type": "string"}}}}},
)


@router.post("/scans", summary="Start a scan job", **JOB_CREATED)
def post_scan(
    body: ScanRequest,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("scan")],
) -> Any:
    root = settings.data_dir.resolve()
    try:
        product_path = _inside(root, body.product)
        _check_manifest(root, product_path)
        product = resolve_product(
            product_path,
            mode=body.mode,
            class_table=_inside(root, body.class_table),
            transition_table=_inside(root, body.transition_table),
            before_path=_inside(root, body.before),
            thresholds=tuple(body.thresholds) if body.thresholds else None,
            activity=body.activity,
            product_id=body.product_id,
            sensor=body.sensor,
            acquired_before=body.acquired_before,
            acquired_after=body.acquired_after,
        )
        for p in [*product.paths, product.class_table, product.transition_table]:
            if p is not None and _under(root, Path(p)) is None:  # a manifest may point elsewhere
                raise PermissionDeniedError(f"a file of the product {OUTSIDE}")
        if not product.paths:
            raise InputError("no raster in the product")
    except RedlineError as exc:  # messages name paths relative to the data folder, never server paths
        exc.args = (hide_paths(str(exc), root, settings.data_dir),)  # same class, so the same status
        raise
    job_id = new_job(store, "scan", body.model_dump(mode="json", exclude_none=True), user.name)
    request.app.state.jobs.submit(
        request.app.state.executor, job_id, run_scan_job, settings.database_url, job_id, product, settings
    )
    response.headers["Location"] = f"/jobs/{job_id}"
    return status_info(store.job(job_id), str(request.base_url).rstrip("/"))
