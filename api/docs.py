"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) with their assets served by the API itself.

The front-end libraries come from the npm registry, pinned in ``web/package.json`` and
``web/package-lock.json``; ``scripts/bootstrap.sh`` installs them (``npm ci``) into
``web/node_modules``. Nothing is fetched from a CDN, so the docs work on a machine without
internet. Only the files the two pages need are served (an allowlist, not the folder).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, Response

from .errors import problem

NODE_MODULES = Path(__file__).resolve().parents[1] / "web" / "node_modules"
ASSET_PATH = "/static/docs"
# URL name -> file under web/node_modules
ASSETS = {
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "favicon.png": "swagger-ui-dist/favicon-32x32.png",
    "redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
}
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".png": "image/png"}
MISSING = (
    "the API docs' front-end assets are not installed in web/node_modules: run scripts/bootstrap.sh (npm ci in web/)"
)


def install(app: FastAPI, node_modules: Path = NODE_MODULES) -> None:
    """Add /docs, /redoc and their assets; the app must be created with docs_url=None, redoc_url=None."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} {app.version}"

    def missing() -> bool:
        return not all((node_modules / rel).is_file() for rel in ASSETS.values())

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> Response:
        if missing():
            return problem(503, "Docs unavailable", MISSING)
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} – Swagger UI",
            swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_PATH}/favicon.png",
            # no badge fetched from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> Response:
        if missing():
            return problem(503, "Docs unavailable", MISSING)
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} – ReDoc",
            redoc_js_url=f"{ASSET_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSET_PATH}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(f"{ASSET_PATH}/{{name}}", include_in_schema=False)
    def asset(name: str) -> Response:
        rel = ASSETS.get(name)
        if rel is None:
            return problem(404, "Not found", f"no docs asset {name!r}")
        path = node_modules / rel
        if not path.is_file():
            return problem(503, "Docs unavailable", MISSING)
        return FileResponse(path, media_type=MEDIA[path.suffix], headers={"Cache-Control": "public, max-age=86400"})
