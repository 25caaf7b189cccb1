"""The FastAPI application: routers, error mapping, limits. Thin by design."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES as GZIP_EXCLUDED

from redline import __version__
from redline import tiles as tile_engine
from redline.config import Settings, get_settings
from redline.evidence import recover as recover_evidence
from redline.jobs import JobKeeper
from redline.safeio import harden_gdal
from redline.store import open_store

from . import (
    analysts,
    checks,
    docs,
    errors,
    features,
    flags,
    ground,
    leads,
    ledger,
    packets,
    processes,
    scans,
    subscriptions,
    tiles,
    webapp,
)
from .deps import StoreDep
from .errors import problem
from .limits import BodySizeLimit
from .schemas import Health
from .work import WorkPool


def _warm_tiles(url: str) -> None:
    try:
        store = open_store(url)
        try:
            tile_engine.warm(store)
        finally:
            store.close()
    except Exception:  # a cache, not a duty: the first tile then loads them
        logging.getLogger(__name__).warning("could not preload the flag points", exc_info=True)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    harden_gdal()  # no network for GDAL/PROJ in the server, whatever a file says
    # Scan jobs run one at a time beside the server; a scan is CPU-bound and writes alone.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-job")
    # Request work (checks, screenings, exports) runs in worker processes, bounded in time.
    work = WorkPool(settings.work_processes, settings.work_timeout_s, settings.work_queue)
    jobs = JobKeeper(settings.database_url, settings.job_heartbeat_s, settings.job_stale_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = open_store(settings.database_url)  # create/upgrade the schema once, fail fast
        try:  # evidence left half-stored by a killed server: finish or remove it
            await run_in_threadpool(recover_evidence, store, settings.evidence_dir)
        finally:
            store.close()
        await run_in_threadpool(work.start)
        await run_in_threadpool(jobs.start)
        warming = threading.Thread(target=_warm_tiles, args=(settings.database_url,), name="tile-warm", daemon=True)
        warming.start()  # the server answers meanwhile
        yield
        warming.join()
        executor.shutdown(wait=True)
        jobs.stop()
        work.close()

    app = FastAPI(
        title="redline",
        version=__version__,
        description="Ecological red-line supervision: checks, screenings, flags (OGC API – Features), "
        "the Green Shield workflow, exports and scan jobs.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # served by docs.install with local assets (no CDN)
    )
    app.state.settings = settings
    app.state.executor = executor
    app.state.jobs = jobs
    app.state.work = work
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # large answers compressed (a 10,000-flag page shrinks ~10x); already-compressed files are left alone
    app.add_middleware(
        GZipMiddleware,
        minimum_size=settings.gzip_min_bytes,
        compresslevel=6,
        exclude_content_types=(*GZIP_EXCLUDED, "application/vnd.apache.parquet"),
    )
    if settings.cors_origins:  # outermost: errors carry the CORS headers too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=False,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Accept", "Accept-Language"],
            expose_headers=["Content-Disposition", "Content-Crs", "ETag", "Link", "Location"],
            max_age=600,
        )
    errors.install(app)

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness")
    async def health() -> dict:  # on the event loop itself: answers while every thread and worker is busy
        return {"status": "ok", "version": __version__}

    @app.get(
        "/ready",
        response_model=Health,
        tags=["service"],
        summary="Readiness: the store answers",
        responses={503: {"description": "store unavailable"}},
    )
    def ready(store: StoreDep):
        store.layer_versions()
        return {"status": "ready", "version": __version__}

    for router in (
        features.router,
        checks.router,
        flags.router,
        flags.evidence_router,
        analysts.router,
        scans.router,
        processes.router,
        tiles.router,
        webapp.router,
        subscriptions.router,
        ledger.router,
        leads.router,
        ground.router,
        packets.router,
    ):
        app.include_router(router)
    docs.install(app)
    return app


__all__ = ["create_app", "problem"]
