"""Scans as asynchronous jobs, on products already in the server's data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response

from redline.change import resolve_product
from redline.errors import InputError, PermissionDeniedError
from redline.jobs import new_job, run_scan_job

from .deps import CurrentUser, SettingsDep, StoreDep, requires
from .schemas import Job, ScanRequest

router = APIRouter(tags=["scans"])


def _inside(root: Path, relative: str | None) -> Path | None:
    """Resolve a user-given path under ``root``; anything that escapes it is refused."""
    if relative is None:
        return None
    if Path(relative).is_absolute() or "\x00" in relative:
        raise PermissionDeniedError("paths are relative to the server's data folder")
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise PermissionDeniedError(f"{relative!r} is outside the server's data folder")
    return path


@router.post("/scans", status_code=201, response_model=Job, summary="Start a scan job",
             responses={201: {"headers": {"Location": {"description": "The job", "schema": {"type": "string"}}}}})
def post_scan(body: ScanRequest, request: Request, response: Response, store: StoreDep, settings: SettingsDep,
              user: Annotated[Any, requires("scan")]) -> Any:
    root = settings.data_dir.resolve()
    product = resolve_product(
        _inside(root, body.product),
        mode=body.mode, class_table=_inside(root, body.class_table),
        transition_table=_inside(root, body.transition_table), before_path=_inside(root, body.before),
        thresholds=tuple(body.thresholds) if body.thresholds else None, activity=body.activity,
        product_id=body.product_id, sensor=body.sensor, acquired_before=body.acquired_before,
        acquired_after=body.acquired_after,
    )
    for p in [*product.paths, product.class_table, product.transition_table]:
        if p is not None and not Path(p).resolve().is_relative_to(root):  # a manifest may point elsewhere
            raise PermissionDeniedError(f"{p} is outside the server's data folder")
    if not product.paths:
        raise InputError("no raster in the product")
    job_id = new_job(store, "scan", body.model_dump(mode="json", exclude_none=True), user.name)
    request.app.state.executor.submit(run_scan_job, settings.database_url, job_id, product, settings)
    response.headers["Location"] = f"/jobs/{job_id}"
    return store.job(job_id)


@router.get("/jobs/{job_id}", response_model=Job, summary="Job status and progress")
def get_job(job_id: str, store: StoreDep, user: CurrentUser) -> Any:
    return store.job(job_id)
