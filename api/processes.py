"""OGC API – Processes: the scan as an asynchronous process, and its jobs.

``POST /processes/scan/execution`` takes the same inputs as the ``POST /scans`` shortcut and
runs on the same job machinery (redline.jobs); the answer is the job's statusInfo, 201 with
its ``Location``. ``/jobs`` lists jobs: an admin sees every job, anyone else their own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from redline.jobs import RESULTS_REL, status_info

from . import scans
from .deps import CurrentUser, SettingsDep, StoreDep, requires
from .errors import PROBLEM
from .params import BAD_PARAMETER, reject_unknown
from .schemas import Job, JobList, ScanExecution, ScanRequest

router = APIRouter(tags=["processes"])

CONF = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
CONFORMANCE = [f"{CONF}/core", f"{CONF}/json", f"{CONF}/job-list", f"{CONF}/oas30"]
EXECUTE_REL = "http://www.opengis.net/def/rel/ogc/1.0/execute"
NOT_READY = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/result-not-ready"
NO_SUCH_JOB = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job"
SCAN = {
    "id": "scan",
    "title": "Scan a change product",
    "description": "Scan one change product (a raster or product manifest in the server's data folder) "
    "against the current protection layers: conflicts become flags, or new observations of "
    "existing flags. A product already scanned (same content) is not scanned again.",
    "version": "1.0.0",
    "jobControlOptions": ["async-execute"],
    "outputTransmission": ["value"],
}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _summary(base: str) -> dict:
    return {
        **SCAN,
        "links": [
            {
                "href": f"{base}/processes/scan",
                "rel": "self",
                "type": "application/json",
                "title": "process description",
            },
            {
                "href": f"{base}/processes/scan/execution",
                "rel": EXECUTE_REL,
                "type": "application/json",
                "title": "execute (POST)",
            },
        ],
    }


def _inputs() -> dict:
    schema = ScanRequest.model_json_schema()
    required = set(schema.get("required", ()))
    out = {}
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        title = prop.pop("title", name)
        description = prop.pop("description", None)
        out[name] = {
            "title": title,
            **({"description": description} if description else {}),
            "schema": prop,
            "minOccurs": 1 if name in required else 0,
            "maxOccurs": 1,
        }
    return out


OUTPUTS = {
    "result": {
        "title": "Scan summary",
        "description": "What the scan found: new and observed flags, "
        "patches, conflicts, observed fraction, skipped (already scanned)",
        "schema": {"type": "object", "contentMediaType": "application/json"},
    }
}


@router.get("/processes", summary="Processes offered", responses=BAD_PARAMETER)
def processes(request: Request, user: CurrentUser) -> dict:
    reject_unknown(request, ())
    base = _base(request)
    return {
        "processes": [_summary(base)],
        "links": [{"href": f"{base}/processes", "rel": "self", "type": "application/json"}],
    }


@router.get("/processes/{process_id}", summary="A process description", responses=BAD_PARAMETER)
def process(request: Request, process_id: str, user: CurrentUser) -> Any:
    reject_unknown(request, ())
    if process_id != "scan":
        return _problem(
            404,
            "no-such-process",
            f"no process {process_id!r}; there is: scan",
            "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-process",
        )
    return {**_summary(_base(request)), "inputs": _inputs(), "outputs": OUTPUTS}


@router.post(
    "/processes/scan/execution", summary="Execute the scan process (asynchronous: 201 and the job)", **scans.JOB_CREATED
)
def execute_scan(
    body: ScanExecution,
    request: Request,
    response: Response,
    store: StoreDep,
    settings: SettingsDep,
    user: Annotated[Any, requires("scan")],
) -> Any:
    job = scans.post_scan(body.inputs, request, response, store, settings, user)
    response.headers["Location"] = job["links"][0]["href"]
    response.headers["Preference-Applied"] = "respond-async"
    return job


def _problem(status: int, title: str, detail: str, type_: str) -> JSONResponse:
    return JSONResponse(
        {"type": type_, "title": title, "status": status, "detail": detail}, status_code=status, media_type=PROBLEM
    )


@router.get(
    "/jobs",
    response_model=JobList,
    summary="Jobs: every job for an admin, one's own for anyone else",
    responses=BAD_PARAMETER,
)
def jobs(
    request: Request,
    store: StoreDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> Any:
    reject_unknown(request, ("limit",))
    base = _base(request)
    rows = store.jobs(actor=None if user.role == "admin" else user.name, limit=limit)
    return {
        "jobs": [status_info(j, base) for j in rows],
        "links": [{"href": f"{base}/jobs", "rel": "self", "type": "application/json"}],
    }


@router.get(
    "/jobs/{job_id}", response_model=Job, summary="Job status and progress (statusInfo)", responses=BAD_PARAMETER
)
def get_job(request: Request, job_id: str, store: StoreDep, user: CurrentUser) -> Any:
    reject_unknown(request, ())
    return status_info(store.job(job_id), _base(request))


@router.get(
    "/jobs/{job_id}/results",
    summary="A finished job's results",
    responses={
        404: {"description": "No such job, or its results are not ready (it has not succeeded)"},
        **BAD_PARAMETER,
    },
)
def job_results(request: Request, job_id: str, store: StoreDep, user: CurrentUser) -> Any:
    reject_unknown(request, ())
    job = store.job(job_id)
    if job["state"] != "successful":
        why = f"job {job_id} is {job['state']}" + (f": {job['message']}" if job.get("message") else "")
        return _problem(404, "result-not-ready", why, NOT_READY)
    return {
        "result": job["result"] or {},
        "links": [
            {"href": f"{_base(request)}/jobs/{job_id}", "rel": "up", "type": "application/json"},
            {"href": f"{_base(request)}/jobs/{job_id}/results", "rel": RESULTS_REL, "type": "application/json"},
        ],
    }
