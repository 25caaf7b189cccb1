"""A scan job whose server was killed does not stay ``running`` for ever: leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from redline.auth import create_token
from redline.config import Settings
from redline.jobs import INTERRUPTED, JobKeeper, new_job
from redline.store import core, open_store


def _an_hour_ago() -> str:
    return (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")


def _old_jobs(store, monkeypatch, **states) -> dict[str, str]:
    """Jobs last renewed an hour ago, in the given states: {name: id}."""
    monkeypatch.setattr(core, "now", _an_hour_ago)
    ids = {}
    for name, state in states.items():
        ids[name] = new_job(store, "scan", {"product": f"{name}.tif"}, "root")
        store.update_job(ids[name], {"state": state})
    monkeypatch.undo()
    return ids


def test_orphans_fail_held_and_finished_jobs_stay(store, store_url, monkeypatch):
    ids = _old_jobs(
        store, monkeypatch, orphan="running", queued="accepted", held="running", done="successful", bad="failed"
    )
    keeper = JobKeeper(store_url, heartbeat_s=5, stale_after_s=60)
    keeper._held.add(ids["held"])  # this server runs it (submit() holds it the same way)
    assert sorted(keeper.tick(store)) == sorted([ids["orphan"], ids["queued"]])
    for name in ("orphan", "queued"):
        job = store.job(ids[name])
        assert job["state"] == "failed" and job["message"] == INTERRUPTED
    assert store.job(ids["held"])["state"] == "running"
    assert store.job(ids["held"])["updated_at"] > _an_hour_ago()  # lease renewed
    assert store.job(ids["done"])["state"] == "successful"
    assert store.job(ids["bad"])["message"] is None
    assert keeper.tick(store) == []  # nothing twice


def test_a_recent_lease_of_another_server_is_respected(store, store_url):
    other = new_job(store, "scan", {"product": "x.tif"}, "root")
    store.update_job(other, {"state": "running"})  # renewed just now by a server we do not know
    assert JobKeeper(store_url, heartbeat_s=5, stale_after_s=60).tick(store) == []
    assert store.job(other)["state"] == "running"


def test_submit_holds_the_lease_until_the_job_returns(store_url):
    from concurrent.futures import ThreadPoolExecutor

    keeper = JobKeeper(store_url, heartbeat_s=5, stale_after_s=60)
    seen = []
    with ThreadPoolExecutor(1) as pool:
        keeper.submit(pool, "j1", lambda: seen.append(keeper.held())).result()
    assert seen == [["j1"]] and keeper.held() == []
    with pytest.raises(ValueError):
        JobKeeper(store_url, heartbeat_s=60, stale_after_s=60)


def test_a_restarted_server_reports_the_killed_servers_job_as_failed(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    token = create_token(store, "root", "admin")
    ids = _old_jobs(store, monkeypatch, killed="running")
    store.close()
    settings = Settings(database_url=url, data_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    with TestClient(create_app(settings)) as client:
        job = client.get(f"/jobs/{ids['killed']}", headers={"Authorization": f"Bearer {token}"}).json()
    assert job["status"] == "failed" and "start the scan again" in job["message"]
