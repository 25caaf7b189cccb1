"""Scans run as jobs (for the API): state and progress recorded in the store."""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, Future
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .change import ChangeProduct
from .config import Settings
from .errors import RedlineError
from .scan import scan_product
from .store import open_store

log = logging.getLogger(__name__)


# an absolute POSIX path inside a message (not the tail of a URL or of a relative path)
_ABSOLUTE = re.compile(r"(?<![\w.~:/-])/(?:[^\s/'\"():,;]+/)+[^\s/'\"():,;]*")


def hide_paths(text: str, *roots: str | Path) -> str:
    """A message without server paths: a path inside one of ``roots`` (the data folder) is
    shown relative to it; any other absolute path is cut to ``…/<last part>``."""
    forms = {str(f) for r in roots if r for f in (Path(r), Path(r).resolve())} - {"/", "."}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form + os.sep, "")
        text = re.sub(re.escape(form) + r"(?![^\s'\":,;)])", ".", text)
    return _ABSOLUTE.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


RESULTS_REL = "http://www.opengis.net/def/rel/ogc/1.0/results"


def status_info(job: dict, base: str = "") -> dict:
    """A stored job with the members of OGC API – Processes' statusInfo (jobID, processID,
    status, created, updated, links); ``base`` is the API's root URL. Who started it
    (``actor``) is not shown."""
    out = {k: v for k, v in job.items() if k != "actor"}
    href = f"{base}/jobs/{job['id']}"
    links = [{"href": href, "rel": "self", "type": "application/json", "title": "this job"}]
    if job["state"] == "successful":
        links.append(
            {"href": f"{href}/results", "rel": RESULTS_REL, "type": "application/json", "title": "the job's results"}
        )
    out.update(
        jobID=job["id"],
        processID=job["kind"],
        type="process",
        status=job["state"],
        created=job["created_at"],
        updated=job["updated_at"],
        links=links,
    )
    return out


INTERRUPTED = (
    "interrupted: the server running this job stopped before it finished; start the scan again "
    "(what a scan had written stays, once)"
)


class JobKeeper:
    """Leases on the jobs this server runs, so a job whose server was killed does not stay
    ``running`` for ever. While a job is held its ``updated_at`` is renewed every
    ``heartbeat_s``; each tick also fails the unfinished jobs of any server whose lease is
    older than ``stale_after_s`` (several servers may share one store, so a lease, not a
    start-up sweep, decides which jobs are orphans)."""

    def __init__(self, database_url: str, heartbeat_s: float, stale_after_s: float) -> None:
        if stale_after_s <= heartbeat_s:
            raise ValueError("a job's lease must outlast several heartbeats")
        self.database_url, self.heartbeat_s, self.stale_after_s = database_url, heartbeat_s, stale_after_s
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def submit(self, executor: Executor, job_id: str, fn: Callable[..., None], *args) -> Future:
        """Run ``fn(*args)`` on ``executor`` holding ``job_id``'s lease from now until it returns."""
        with self._lock:
            self._held.add(job_id)

        def run() -> None:
            try:
                fn(*args)
            finally:
                with self._lock:
                    self._held.discard(job_id)

        return executor.submit(run)

    def tick(self, store, at: datetime | None = None) -> list[str]:
        """Renew the held leases and fail the orphans; the ids of the jobs failed now."""
        at = at or datetime.now(UTC)
        store.touch_jobs(self.held())
        before = (at - timedelta(seconds=self.stale_after_s)).isoformat(timespec="seconds")
        expired = store.expire_jobs(before, INTERRUPTED)
        for job_id in expired:
            log.warning("job %s: its server stopped before it finished; marked failed", job_id)
        return expired

    def _tick_safely(self, store) -> None:
        try:
            self.tick(store)
        except Exception:  # the database is busy or away for a moment: the next tick renews
            log.warning("job leases: the store did not answer; retrying", exc_info=True)

    def start(self) -> None:
        store = open_store(self.database_url)
        self._tick_safely(store)  # orphans of a server killed long enough ago go at once

        def loop() -> None:
            try:
                while not self._stop.wait(self.heartbeat_s):
                    self._tick_safely(store)
            finally:
                store.close()

        self._thread = threading.Thread(target=loop, name="job-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def new_job(store, kind: str, request: dict, actor: str) -> str:
    job_id = uuid.uuid4().hex
    store.add_job({"id": job_id, "kind": kind, "state": "accepted", "progress": 0, "request": request, "actor": actor})
    return job_id


def run_scan_job(database_url: str, job_id: str, product: ChangeProduct, settings: Settings) -> None:
    """Run one scan job to completion; never raises (the job row says what happened)."""
    store = open_store(database_url)
    try:
        store.update_job(job_id, {"state": "running"})
        done, reported = 0, 0

        def progress(n: int, total: int) -> None:
            nonlocal done, reported
            done += n
            pct = min(99, done * 100 // max(total, 1))
            if pct >= reported + 5:  # a write per 5 %, not per window
                reported = pct
                store.update_job(job_id, {"progress": pct})

        result = scan_product(store, product, settings=settings, progress=progress)
        store.update_job(
            job_id,
            {
                "state": "successful",
                "progress": 100,
                "result": result.summary(),
                "message": "already scanned" if result.skipped else None,
            },
        )
    except RedlineError as exc:  # job messages are read through the API: no server paths in them
        store.update_job(job_id, {"state": "failed", "message": hide_paths(str(exc), settings.data_dir)})
    except Exception as exc:  # a bug: keep the reason, and the traceback in the log
        log.exception("scan job %s crashed", job_id)
        store.update_job(
            job_id,
            {
                "state": "failed",
                "message": hide_paths(f"internal error: {type(exc).__name__}: {exc}", settings.data_dir),
            },
        )
    finally:
        store.close()
