"""OGC API – Processes: the scan process, asynchronous execution, the job list and results."""

from __future__ import annotations

import time

import numpy as np
import rasterio

from redline.jobs import new_job
from redline.store import open_store

from .conftest import assert_problem

RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"


def _wait(client, headers, url: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url, headers=headers).json()
        if job["status"] in ("successful", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {url} did not finish")


def _path(url: str) -> str:
    return url.split("testserver", 1)[-1]


def test_process_list_and_description(client, auth):
    h = auth("viewer")
    listing = client.get("/processes", headers=h).json()
    assert [p["id"] for p in listing["processes"]] == ["scan"]
    assert listing["processes"][0]["jobControlOptions"] == ["async-execute"]
    scan = client.get("/processes/scan", headers=h).json()
    assert scan["inputs"]["product"]["minOccurs"] == 1 and scan["inputs"]["product"]["schema"]["type"] == "string"
    assert scan["inputs"]["acquired_after"]["minOccurs"] == 0
    assert "result" in scan["outputs"]
    assert any(
        link["rel"].endswith("/execute") and link["href"].endswith("/processes/scan/execution")
        for link in scan["links"]
    )
    r = client.get("/processes/nope", headers=h)
    assert_problem(r, 404, "nope")
    assert r.json()["type"].endswith("no-such-process")
    assert_problem(client.get("/processes?x=1", headers=h), 400, "'x'")
    assert_problem(client.get("/processes"), 401)


def test_execute_scan_async_job_and_results(env, client, auth):
    h = auth("admin")
    data = env["settings"].data_dir
    with rasterio.open(env["out"] / "change_2026-06.tif") as ds:  # a new checksum: one pixel block changed
        profile, arr = ds.profile, ds.read(1)
    arr[0:4, 0:4] = np.uint8(0)
    with rasterio.open(data / "june_proc.tif", "w", **profile) as dst:
        dst.write(arr, 1)
    body = {
        "inputs": {
            "product": "june_proc.tif",
            "class_table": "change_classes.csv",
            "acquired_after": "2026-06-22",
            "product_id": "HJ-PROC",
        }
    }
    r = client.post("/processes/scan/execution", json=body, headers=h)
    assert r.status_code == 201, r.text
    info = r.json()
    assert (
        info["type"] == "process"
        and info["processID"] == "scan"
        and info["status"] in ("accepted", "running", "successful")
    )
    assert r.headers["location"].endswith(f"/jobs/{info['jobID']}") and info["jobID"] == info["id"]
    job = _wait(client, h, _path(r.headers["location"]))
    assert job["status"] == job["state"] == "successful", job
    results_link = next(link["href"] for link in job["links"] if link["rel"] == RESULTS)
    results = client.get(_path(results_link), headers=h).json()
    assert results["result"] == job["result"] and "observed_flags" in results["result"]
    # the job is listed for the admin; the /scans shortcut answers the same document
    assert info["jobID"] in [j["jobID"] for j in client.get("/jobs", headers=h).json()["jobs"]]
    again = client.post("/scans", json=body["inputs"], headers=h)
    assert again.status_code == 201 and again.json()["processID"] == "scan"
    assert _wait(client, h, _path(again.headers["location"]))["message"] == "already scanned"


def test_execute_refusals(client, auth):
    body = {"inputs": {"product": "x.tif"}}
    assert_problem(client.post("/processes/scan/execution", json=body, headers=auth("analyst")), 403, "may not")
    assert_problem(client.post("/processes/scan/execution", json=body), 401)
    h = auth("admin")
    assert_problem(client.post("/processes/scan/execution", json={"product": "x.tif"}, headers=h), 422)
    assert_problem(client.post("/processes/scan/execution", json={**body, "mode": "sync"}, headers=h), 422)
    assert_problem(
        client.post("/processes/scan/execution", json={"inputs": {"product": "../store.db"}}, headers=h),
        403,
        "data folder",
    )
    assert_problem(client.post("/processes/scan/execution", json=body, headers=h), 404)


def test_job_list_is_own_jobs_except_for_admin(env, client, auth):
    store = open_store(env["url"])
    try:
        mine = new_job(store, "scan", {"product": "v.tif"}, "v")  # the viewer token's name
        other = new_job(store, "scan", {"product": "a.tif"}, "a")  # the analyst's
    finally:
        store.close()
    viewer = [j["jobID"] for j in client.get("/jobs", headers=auth("viewer")).json()["jobs"]]
    assert viewer == [mine]
    admin = [j["jobID"] for j in client.get("/jobs", headers=auth("admin")).json()["jobs"]]
    assert {mine, other} <= set(admin)
    created = [j["created"] for j in client.get("/jobs", headers=auth("admin")).json()["jobs"]]
    assert created == sorted(created, reverse=True)  # newest first
    assert len(client.get("/jobs?limit=1", headers=auth("admin")).json()["jobs"]) == 1
    assert "actor" not in client.get("/jobs", headers=auth("admin")).json()["jobs"][0]
    assert_problem(client.get("/jobs?state=running", headers=auth("admin")), 400, "'state'")
    assert_problem(client.get("/jobs"), 401)


def test_results_of_an_unfinished_or_failed_job(env, client, auth):
    store = open_store(env["url"])
    try:
        waiting = new_job(store, "scan", {"product": "w.tif"}, "root")
        failed = new_job(store, "scan", {"product": "f.tif"}, "root")
        store.update_job(failed, {"state": "failed", "message": "not a readable raster"})
    finally:
        store.close()
    h = auth("viewer")
    r = client.get(f"/jobs/{waiting}/results", headers=h)
    assert_problem(r, 404, "accepted")
    assert r.json()["type"].endswith("result-not-ready")
    assert_problem(client.get(f"/jobs/{failed}/results", headers=h), 404, "not a readable raster")
    status = client.get(f"/jobs/{waiting}", headers=h).json()
    assert status["status"] == "accepted" and not any(link["rel"] == RESULTS for link in status["links"])
    assert_problem(client.get("/jobs/nope/results", headers=h), 404)
