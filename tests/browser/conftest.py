"""The web app in a real browser: Debian's chromium (scripts/provision_browser.sh), driven by
Playwright for Python, against a real ``redline serve`` on a free port over the sample scenario.

Playwright never downloads a browser here: it is pointed at the installed executable. Every
page records console errors, page errors and any request that leaves the server; a test fails
on any of them. Each step saves a screenshot under ``test-artefacts/browser/`` (or
``$REDLINE_TEST_ARTEFACTS``) for a person to look at.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import pytest

from redline.auth import create_token
from redline.store import open_store

from ..live import CHROMIUM, CHROMIUM_ARGS, LiveServer
from ..scenario import build

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("REDLINE_TEST_ARTEFACTS", ROOT / "test-artefacts")) / "browser"
XIN = "150625100"  # 锡尼镇: every flag but one
YIHE = "150625201"  # 伊和乌素苏木: the farmland flag


def _photo() -> bytes:
    """A small JPEG (a field photo stand-in), so that the panel shows a thumbnail."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (160, 120), (194, 178, 128))
    ImageDraw.Draw(img).rectangle((40, 50, 120, 90), fill=(120, 90, 60))
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``redline serve`` over the scanned sample scenario (SQLite), one token per role."""
    yield from _serve(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory, postgis):
    """The same over a PostGIS store (tests/pg.py): skipped, or failed where required, without one."""
    url = postgis.database()
    try:
        yield from _serve(tmp_path_factory.mktemp("browser-pg"), url)
    finally:
        postgis.drop(url)


@pytest.fixture(params=("sqlite", "postgis"))
def store_server(request):
    """For the tests that run on both stores: ``server`` or ``pg_server`` (ids [sqlite], [postgis])."""
    return request.getfixturevalue("server" if request.param == "sqlite" else "pg_server")


def _serve(out: Path, url: str | None = None):
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        pytest.fail("the web app is not built: run scripts/bootstrap.sh (it builds web/dist)")
    _, url = build(out, url=url)
    store = open_store(url)
    try:
        tokens = {
            "admin": create_token(store, "管理员", "admin"),
            "viewer": create_token(store, "查看员", "viewer"),
            "inspector": create_token(store, "王伟", "inspector", [XIN]),
            "inspector_yihe": create_token(store, "李娜", "inspector", [YIHE]),
        }
    finally:
        store.close()
    env: dict[str, str | None] = {
        "REDLINE_EVIDENCE_DIR": str(out / "evidence"),
        "REDLINE_DATA_DIR": str(out / "data"),
        "REDLINE_WORK_PROCESSES": "1",
        "REDLINE_BASEMAP_URL": None,
    }
    with LiveServer(url, out / "server.log", env) as server:
        base = server.base
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        flags = httpx.get(f"{base}/collections/flags/items?limit=1000", headers=admin).json()["features"]
        # a photo on one flag, so that the panel shows a thumbnail
        httpx.post(
            f"{base}/flags/{flags[0]['id']}/evidence",
            headers=admin,
            files={"file": ("site.jpg", _photo(), "image/jpeg")},
            data={"note": "现场照片"},
        ).raise_for_status()
        yield {"base": base, "tokens": tokens, "flags": flags, "out": out, "url": url}


@pytest.fixture(scope="module")
def browser():  # closed with its module: Playwright's event loop never outlives the browser tests
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no browser at {CHROMIUM}: run scripts/provision_browser.sh (Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class Page:
    """A browser tab on the app with its problems recorded and a screenshot helper."""

    def __init__(self, page, base: str, name: str):
        self.page, self.base, self.name = page, base, name
        self.errors: list[str] = []
        self.expected_errors: tuple[str, ...] = ()  # fragments of errors a test provokes on purpose
        self.outside: list[str] = []
        self.step = 0
        page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text}"))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", self._request)

    def _request(self, req) -> None:
        url = req.url
        if not (url.startswith(self.base + "/") or url.startswith(("data:", "blob:"))):
            self.outside.append(url)

    def shot(self, what: str) -> Path:
        self.step += 1
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{self.name}-{self.step:02d}-{what}.png"
        self.page.screenshot(path=str(path))
        return path

    def sign_in(self, token: str, query: str = "") -> None:
        """The sign-in link an administrator sends: /#token=..."""
        self.page.goto(f"{self.base}/{query}#token={token}")
        self.page.wait_for_function("() => window.redline && window.redline.ready")
        self.page.evaluate("() => window.redline.ready")
        self.wait_idle()

    def wait_idle(self, flags: bool = True) -> None:
        """The map is loaded, its tiles are in, and (unless told) flags are drawn."""
        self.page.wait_for_function(
            """(flags) => { const r = window.redline; return r && r.map.loaded() && r.map.areTilesLoaded()
                 && !r.map.isMoving() && (!flags || r.flagMap.renderedFlagIds().length > 0); }""",
            arg=flags,
        )

    def rendered(self) -> list[int]:
        return self.page.evaluate("() => window.redline.flagMap.renderedFlagIds()")


@pytest.fixture
def app_page(browser, request):
    # the server of the test: ``store_server`` (both stores) where it asks for it, else SQLite's
    server = request.getfixturevalue("store_server" if "store_server" in request.fixturenames else "server")
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(20_000)
    name = request.node.name.removeprefix("test_").replace("[", "-").replace("]", "")
    p = Page(page, server["base"], name)
    yield p
    try:
        if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
            p.shot("failed")
    finally:
        context.close()
    errors = [e for e in p.errors if not any(x in e for x in p.expected_errors)]
    assert not errors, errors
    assert not p.outside, f"requests outside the server: {p.outside}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def api(server, role: str, path: str, **params) -> dict:
    r = httpx.get(
        f"{server['base']}{path}", params=params, headers={"Authorization": f"Bearer {server['tokens'][role]}"}
    )
    r.raise_for_status()
    return r.json()


__all__ = ["ARTEFACTS", "XIN", "YIHE", "api"]
