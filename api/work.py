"""CPU-heavy request work off the event loop, bounded in number and in time.

Checks, screenings and exports parse user files, repair geometry, overlay and write: seconds
of CPU that must not hold up the event loop (``/health`` and every other request would
wait) and that must stop when they run too long. They run in a small pool of worker
processes (pebble): a task past ``work_timeout_s`` is answered 503 and its worker is killed
and replaced; beyond ``work_queue`` waiting requests the API answers 503 at once.

The task functions below are the whole of what runs in a worker: each opens the store and
calls the engine, nothing more.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import CancelledError as FutureCancelled
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import date
from pathlib import Path

from pebble import ProcessExpired, ProcessPool

from redline.auth import Principal
from redline.check import check_region
from redline.config import Settings
from redline.errors import BusyError
from redline.export import export_flags
from redline.leads import LeadLimits, export_results, import_leads
from redline.regions import RegionLimits, parse_json, read_region, region_from_geojson
from redline.reports import check_report, flag_report, screening_report
from redline.rules import load_rules
from redline.safeio import harden_gdal
from redline.screening import screen
from redline.store import FlagFilter, Store, open_store

from .schemas import CheckAnswer, ScreeningAnswer

MAX_TASKS_PER_WORKER = 500  # recycle workers now and then: GEOS/GDAL caches stay small

# --- in the worker ----------------------------------------------------------------------

_stores: dict[str, Store] = {}


def _store(url: str) -> Store:
    """One store per worker process and database, opened on first use."""
    if url not in _stores:
        _stores[url] = open_store(url)
    return _stores[url]


# Answers are validated and serialised here too: a check listing thousands of flags is
# megabytes of JSON, which would otherwise be encoded on the server's event loop.


def _region(body: bytes | None, upload: tuple[str, str] | None, crs: str | None, limits: RegionLimits):
    if upload is not None:
        path, name = upload
        return read_region(Path(path), crs, limits, name=name)
    assert body is not None  # a region comes as an upload or as a body
    return region_from_geojson(parse_json(body, "request body"), crs, "region", limits)


def check_task(
    url: str,
    principal: Principal,
    body: bytes | None,
    upload: tuple[str, str] | None,
    crs: str | None,
    since: date | None,
    until: date | None,
    limits: RegionLimits,
) -> bytes:
    answer = check_region(_store(url), _region(body, upload, crs, limits), since, until, principal=principal)
    return CheckAnswer.model_validate(answer).model_dump_json().encode()


def check_report_task(
    url: str,
    principal: Principal,
    body: bytes | None,
    upload: tuple[str, str] | None,
    crs: str | None,
    since: date | None,
    until: date | None,
    limits: RegionLimits,
    fmt: str,
    basemap_url: str | None = None,
) -> bytes:
    store, region = _store(url), _region(body, upload, crs, limits)
    answer = check_region(store, region, since, until, principal=principal)
    title = upload[1] if upload else None
    return check_report(store, region, answer, fmt, principal=principal, title=title, basemap_url=basemap_url)


def screening_task(
    url: str, footprint: dict, crs: str | None, activity: str, rules_path: Path | None, limits: RegionLimits
) -> bytes:
    region = region_from_geojson(footprint, crs, "footprint", limits)
    answer = screen(_store(url), region, activity, load_rules(rules_path))
    return ScreeningAnswer.model_validate(answer).model_dump_json().encode()


def screening_report_task(
    url: str,
    footprint: dict,
    crs: str | None,
    activity: str,
    rules_path: Path | None,
    limits: RegionLimits,
    fmt: str,
    principal: Principal,
    basemap_url: str | None = None,
) -> bytes:
    store, region = _store(url), region_from_geojson(footprint, crs, "footprint", limits)
    answer = screen(store, region, activity, load_rules(rules_path))
    return screening_report(store, region, answer, fmt, principal=principal, basemap_url=basemap_url)


def export_task(url: str, path: str, fmt: str, flt: FlagFilter, crs: str | None) -> dict:
    return export_flags(_store(url), path, fmt, flt, crs)


def flag_report_task(
    url: str, principal: Principal, flag_id: int, fmt: str, evidence_dir: Path, basemap_url: str | None = None
) -> bytes:
    store = _store(url)
    return flag_report(store, flag_id, fmt, principal=principal, evidence_dir=evidence_dir, basemap_url=basemap_url)


def packet_task(url: str, path: str, principal: Principal, flt: FlagFilter, settings: Settings, sheets: bool) -> dict:
    from redline.packet import write_packet

    most = settings.packet_max_sheets
    return write_packet(_store(url), path, flt, principal=principal, settings=settings, sheets=sheets, max_sheets=most)


def ledger_task(url: str, principal: Principal, fmt: str, today: date | None, flt: FlagFilter | None = None) -> bytes:
    from redline.ledger import export as export_ledger

    return export_ledger(_store(url), principal, fmt, today, flt)


def leads_import_task(
    url: str,
    principal: Principal,
    upload: tuple[str, str],
    batch: str,
    mapping: dict[str, str] | None,
    settings: Settings,
    limits: LeadLimits,
) -> dict:
    path, name = upload
    result = import_leads(
        _store(url),
        path,
        batch,
        mapping=mapping,
        actor=principal.name,
        settings=settings,
        name=name,
        limits=limits,
        principal=principal,
    )
    return result.summary()


def leads_export_task(url: str, principal: Principal, batch: str, path: str) -> dict:
    return export_results(_store(url), batch, path, principal)


# --- in the server ----------------------------------------------------------------------


class WorkPool:
    """A pool of worker processes shared by all requests of one app."""

    def __init__(self, processes: int, timeout_s: float, queue: int):
        self.processes, self.timeout_s, self.queue = processes, timeout_s, queue
        self._pool: ProcessPool | None = None
        self._in_flight = 0

    def start(self) -> None:
        """Start the workers now (at app start-up) rather than on the first request."""
        self._get()

    def _get(self) -> ProcessPool:
        if self._pool is None or not self._pool.active:
            # forkserver: workers fork from a clean server process that has imported the
            # program and this module once (a worker starts in milliseconds), and inherit no
            # database connections, threads or locks of the API process
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["__main__", __name__])
            self._pool = ProcessPool(
                max_workers=self.processes, max_tasks=MAX_TASKS_PER_WORKER, context=context, initializer=harden_gdal
            )
        return self._pool

    async def run(self, fn, *args):
        """Run ``fn(*args)`` in a worker; engine errors come back as themselves."""
        if self._in_flight >= self.processes + self.queue:
            raise BusyError(f"the server is busy ({self._in_flight} requests in progress); try again shortly")
        self._in_flight += 1
        future = self._get().schedule(fn, args=args, timeout=self.timeout_s)
        try:
            # pebble kills a worker past the limit (it checks on a tick); wait_for bounds the
            # request itself, queueing included, and cancelling the future stops the worker
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except (TimeoutError, FutureTimeout):
            future.cancel()
            raise BusyError(
                f"the work ran past the limit of {self.timeout_s:g} s and was stopped; "
                "a smaller or simpler input answers sooner"
            ) from None
        except ProcessExpired:
            raise BusyError("the worker doing this request died (out of memory?); try a smaller input") from None
        except (asyncio.CancelledError, FutureCancelled):
            future.cancel()  # the client went away: stop the work too
            raise
        finally:
            self._in_flight -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool.join(timeout=10)
            self._pool = None
