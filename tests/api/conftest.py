"""An API over the scanned sample scenario, with one token per role."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from redline.auth import create_token
from redline.config import Settings
from redline.store import open_store

from ..conftest import BACKENDS, backend_url
from ..scenario import build

XIN = "150625100"  # 锡尼镇: every flag but one is here
YIHE = "150625201"  # 伊和乌素苏木: the farmland flag


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    truth, url = build(out, url=backend_url(request, request.param, out))
    data = out / "data"
    data.mkdir()
    for name in ("change_classes.csv",):
        shutil.copy(out / name, data / name)
    store = open_store(url)
    tokens = {
        "viewer": create_token(store, "v", "viewer"),
        "inspector": create_token(store, "i", "inspector", [XIN]),
        "inspector_yihe": create_token(store, "j", "inspector", [YIHE]),
        "analyst": create_token(store, "a", "analyst"),
        "admin": create_token(store, "root", "admin"),
    }
    store.close()
    settings = Settings(
        database_url=url,
        data_dir=data,
        evidence_dir=out / "evidence",
        max_body_bytes=5_000_000,
        max_evidence_bytes=1_000_000,
        max_region_vertices=50_000,
    )
    app = create_app(settings)
    with TestClient(app) as client:
        yield {
            "client": client,
            "tokens": tokens,
            "truth": truth,
            "out": out,
            "url": url,
            "settings": settings,
            "app": app,
        }


@pytest.fixture
def client(env):
    return env["client"]


@pytest.fixture
def auth(env):
    def _auth(role: str) -> dict:
        return {"Authorization": f"Bearer {env['tokens'][role]}"}

    return _auth


def assert_problem(response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"]
    for f in fragments:
        assert f in body.get("detail", ""), body
    return body
