"""Scans run as jobs (for the API): state and progress recorded in the store."""

from __future__ import annotations

import logging
import os
import re
import uuid
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
