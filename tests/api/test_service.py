"""Service plumbing: gzip for large answers, CORS origins as a setting, /docs and /redoc
with local assets (no CDN: they work on a machine without internet)."""

from __future__ import annotations

import gzip
import re
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api import docs
from api.app import create_app
from redline.config import Settings

ORIGIN = "https://gis.example.cn"


@pytest.fixture(scope="module")
def make_client(tmp_path_factory):
    clients = []

    def _make(**settings) -> TestClient:
        out = tmp_path_factory.mktemp("svc")
        app = create_app(
            Settings(
                database_url=f"sqlite:///{out / 'store.db'}",
                data_dir=out,
                evidence_dir=out / "evidence",
                work_processes=1,
                **settings,
            )
        )
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield _make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client(make_client):
    return make_client()


def test_large_answers_are_gzipped(client):
    r = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"]
    raw = client.get("/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers and raw.json() == r.json()
    # small answers are not worth it
    small = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_gzip_threshold_is_a_setting(make_client):
    c = make_client(gzip_min_bytes=10)
    r = c.get("/health", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("content-encoding") == "gzip" and r.json()["status"] == "ok"
    stream = c.stream("GET", "/health", headers={"Accept-Encoding": "gzip"})
    with stream as s:  # the bytes on the wire are gzip
        assert gzip.decompress(b"".join(s.iter_raw())).startswith(b'{"status"')


def test_no_cors_by_default(client):
    r = client.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/health", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_for_configured_origins(make_client):
    c = make_client(cors_origins=[ORIGIN, "http://localhost:5173"])
    pre = c.options(
        "/collections/flags/items",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in pre.headers["access-control-allow-headers"].lower()
    r = c.get("/health", headers={"Origin": ORIGIN})
    assert r.headers["access-control-allow-origin"] == ORIGIN
    # an error answer carries the header too, so that the page can read the problem
    err = c.get("/collections/flags/items", headers={"Origin": ORIGIN})
    assert err.status_code == 401 and err.headers["access-control-allow-origin"] == ORIGIN
    other = c.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    bad = c.options("/health", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert bad.status_code == 400


def test_cors_origins_setting(monkeypatch):
    monkeypatch.setenv("REDLINE_CORS_ORIGINS", f"{ORIGIN}, http://localhost:5173")
    assert Settings().cors_origins == [ORIGIN, "http://localhost:5173"]
    monkeypatch.setenv("REDLINE_CORS_ORIGINS", f'["{ORIGIN}"]')
    assert Settings().cors_origins == [ORIGIN]
    monkeypatch.delenv("REDLINE_CORS_ORIGINS")
    assert Settings().cors_origins == []
    for bad in (f"{ORIGIN}/", "gis.example.cn", f"{ORIGIN}/app", "ftp://x.cn"):
        monkeypatch.setenv("REDLINE_CORS_ORIGINS", bad)
        with pytest.raises(ValidationError, match="REDLINE_CORS_ORIGINS"):
            Settings()


URL_ATTR = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")
JS_URL = re.compile(r"""url:\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_use_local_assets_only(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "http://" not in html and "https://" not in html and "//cdn" not in html  # no external host
    urls = URL_ATTR.findall(html) + JS_URL.findall(html)
    assert any(u.endswith(".js") for u in urls) and "/openapi.json" in urls
    for url in urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and url.startswith("/"), url
        got = client.get(url)
        assert got.status_code == 200, url
        assert len(got.content) > (1000 if url.endswith((".js", ".css")) else 100), url
        if url.endswith(".js"):
            assert got.headers["content-type"].startswith("text/javascript")


def test_docs_not_in_schema_and_assets_allowlisted(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(p.startswith(("/docs", "/redoc", docs.ASSET_PATH)) for p in paths)
    assert client.get(f"{docs.ASSET_PATH}/package.json").status_code == 404
    assert client.get(f"{docs.ASSET_PATH}/..%2F..%2Fpackage.json").status_code == 404


def test_docs_without_assets_say_how_to_install(tmp_path):
    app = FastAPI(docs_url=None, redoc_url=None)
    docs.install(app, node_modules=tmp_path)
    with TestClient(app) as c:
        for url in ("/docs", "/redoc", f"{docs.ASSET_PATH}/redoc.standalone.js"):
            r = c.get(url)
            assert r.status_code == 503 and "scripts/bootstrap.sh" in r.json()["detail"]
