"""GDAL's own OAPIF client (Debian's gdal-bin, GDAL 3.6: scripts/provision_gdal_bin.sh) against
a real ``redline serve`` over the sample scenario, on both stores: ``ogrinfo -where`` gets
exactly the matching flags, and the server was asked for them (the filter pushed down to it,
as its access log shows), not for every flag to be filtered by GDAL."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from redline.auth import create_token
from redline.safeio import HARDENED_CONFIG
from redline.store import open_store

from ..conftest import BACKENDS, backend_url
from ..live import LiveServer
from ..scenario import build

ROOT = Path(__file__).resolve().parents[2]
REQUEST = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d{3})')


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory):
    """``redline serve`` on a free port over the scanned sample scenario, an analyst's token."""
    if shutil.which("ogrinfo") is None:
        pytest.fail("no ogrinfo: run scripts/provision_gdal_bin.sh (Debian's gdal-bin)")
    out = tmp_path_factory.mktemp("gdal")
    _, url = build(out, url=backend_url(request, request.param, out))
    store = open_store(url)
    try:
        token = create_token(store, "gdal", "analyst")
        yellow = create_token(store, "yihe", "inspector", ["150625201"])
    finally:
        store.close()
    log = out / "server.log"
    with LiveServer(url, log, {"REDLINE_WORK_PROCESSES": "1"}) as server:
        yield {"base": server.base, "token": token, "inspector": yellow, "log": log}


def _ogrinfo(served, *args: str, token: str | None = None) -> str:
    # GDAL as a user runs it: not with the hardening an in-process app put in this environment
    env = {k: v for k, v in os.environ.items() if k not in HARDENED_CONFIG}
    env |= {"GDAL_HTTP_HEADERS": f"Authorization: Bearer {token or served['token']}", "CPL_DEBUG": "OFF"}
    done = subprocess.run(
        ["ogrinfo", "-ro", "-al", "-q", f"OAPIF:{served['base']}", "flags", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _ids(listing: str) -> list[int]:
    """The flag ids of ``ogrinfo -al`` output (each feature's ``id (Integer...) = N`` line)."""
    return [int(m) for m in re.findall(r"^\s+id \(\w+\) = (\d+)$", listing, re.M)]


def _requests(served, since: int) -> list[tuple[str, dict]]:
    """The items requests the server answered after byte ``since`` of its access log."""
    text = served["log"].read_bytes()[since:].decode(errors="replace")
    out = []
    for path, status in REQUEST.findall(text):
        parts = urlsplit(path)
        if parts.path == "/collections/flags/items":
            assert status == "200", text
            out.append((parts.path, dict(parse_qsl(parts.query))))
    return out


def _items(served, token: str | None = None, **params) -> list[dict]:
    h = {"Authorization": f"Bearer {token or served['token']}"}
    r = httpx.get(f"{served['base']}/collections/flags/items", params={"limit": 1000, **params}, headers=h)
    r.raise_for_status()
    return r.json()["features"]


def test_gdal_version_is_debians(served):
    out = subprocess.run(["ogrinfo", "--version"], capture_output=True, text=True).stdout
    assert re.match(r"GDAL 3\.\d+", out), out


def test_ogrinfo_where_is_pushed_down_and_exact(served):
    everything = _items(served)
    critical = {f["id"] for f in everything if f["properties"]["severity"] == "critical"}
    assert 0 < len(critical) < len(everything)  # the filter must select, not pass everything
    since = served["log"].stat().st_size
    listing = _ogrinfo(served, "-where", "severity = 'critical'")
    assert sorted(_ids(listing)) == sorted(critical)
    assert f"Feature Count: {len(critical)}" in listing or "OGRFeature" in listing
    # the server saw the filter: GDAL read the features with it; without it GDAL only looked at
    # one small first page (to learn the fields), it never paged through every flag
    deadline = time.monotonic() + 10  # the access log line may follow the answer by a moment
    while True:
        seen = _requests(served, since)
        pushed = [q for _, q in seen if q.get("severity") == "critical" or "critical" in q.get("filter", "")]
        if pushed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    plain = [q for _, q in seen if q not in pushed]
    assert pushed, f"the filter never reached the server: {seen}"
    assert all(set(q) == {"limit"} and int(q["limit"]) <= 10 for q in plain), plain


def test_ogrinfo_where_on_two_fields_and_jurisdiction(served):
    everything = _items(served)
    expected = {
        f["id"]
        for f in everything
        if f["properties"]["severity"] in ("critical", "high") and f["properties"]["activity"] != "farmland"
    }
    listing = _ogrinfo(served, "-where", "severity IN ('critical', 'high') AND activity <> 'farmland'")
    assert sorted(_ids(listing)) == sorted(expected)
    # an inspector sees their own jurisdiction only, through GDAL too
    mine = {f["id"] for f in _items(served, served["inspector"])}
    listing = _ogrinfo(served, token=served["inspector"])
    assert sorted(_ids(listing)) == sorted(mine) and len(mine) < len(everything)
