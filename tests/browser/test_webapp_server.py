"""The serving side of the web app (api/webapp.py), without a browser."""

from __future__ import annotations

import httpx
import pytest

from api.webapp import _csp, wants_html
from redline.config import Settings

from .conftest import XIN


@pytest.mark.parametrize(
    "accept,html",
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),  # a browser navigating
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/json, text/html", False),
        ("text/html, application/json", True),
    ],
)
def test_only_browsers_get_the_page_at_the_root(accept, html):
    from starlette.requests import Request

    scope = {"type": "http", "headers": [(b"accept", accept.encode())] if accept else []}
    assert wants_html(Request(scope)) is html


def test_basemap_setting_is_an_xyz_template(monkeypatch):
    assert Settings().basemap_url is None
    monkeypatch.setenv("REDLINE_BASEMAP_URL", "https://tiles.example.cn/{z}/{x}/{y}.png")
    assert Settings().basemap_url == "https://tiles.example.cn/{z}/{x}/{y}.png"
    assert "img-src 'self' data: blob: https://tiles.example.cn;" in _csp(Settings().basemap_url)
    for bad in ("javascript:alert(1)//{z}{x}{y}", "https://tiles.example.cn/a.png", "ftp://x/{z}/{x}/{y}"):
        monkeypatch.setenv("REDLINE_BASEMAP_URL", bad)
        with pytest.raises(ValueError):
            Settings()


def test_config_me_and_assets(server):
    base = server["base"]
    assert httpx.get(f"{base}/app/config.json").json() == {"tiles": True, "basemap": None}
    me = httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {server['tokens']['inspector']}"}).json()
    assert me["role"] == "inspector" and me["jurisdiction"] == [XIN]
    assert {"workflow", "evidence", "stats"} <= set(me["permissions"]) and "export" not in me["permissions"]
    assert httpx.get(f"{base}/me").status_code == 401
    page = httpx.get(f"{base}/app/")
    assert page.headers["cache-control"] == "no-cache" and page.headers["content-type"].startswith("text/html")
    scripts = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    assert scripts and all(s.startswith("/app/assets/") for s in scripts)
    js = httpx.get(f"{base}{scripts[0]}")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "immutable" in js.headers["cache-control"]
    assert httpx.get(f"{base}/app/assets/nope.js").status_code == 404
