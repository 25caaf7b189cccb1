"""The supervision map web app, served by the API itself (no second server, no CDN).

``scripts/bootstrap.sh`` builds the app from ``web/`` (npm packages pinned by the lock file,
Vite) into ``web/dist``, which is never committed. This module serves:

- ``/`` to a browser (``Accept: text/html``): the app's page (JSON clients keep the OGC landing
  page; see ``api.features.landing``);
- ``/app/{path}``: the built files, from that one folder only (no path outside it, no listing);
- ``/app/config.json``: what the page needs to know about this server (tiles, basemap);
- ``/me``: who the token belongs to, so the page offers only what the role may do (the API
  enforces it anyway).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel

from redline.auth import PERMISSIONS

from .deps import CurrentUser
from .errors import problem

DIST = Path(__file__).resolve().parents[1] / "web" / "dist"
MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".json": "application/json",
}
MISSING = "the web app is not built in web/dist: run scripts/bootstrap.sh (npm ci and npm run build in web/)"
# built file names carry a content hash: cached for good; the page itself is always revalidated
HASHED = re.compile(r"-[A-Za-z0-9_-]{8}\.(js|mjs|css)$")
SAFE_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


class WebConfig(BaseModel):
    tiles: bool
    basemap: str | None


class Me(BaseModel):
    name: str
    role: str
    jurisdiction: list[str]
    permissions: list[str]


def _csp(basemap: str | None) -> str:
    extra = ""
    if basemap:
        m = re.match(r"^(https?://[^/]+)", basemap)
        extra = f" {m.group(1)}" if m else ""
    return (
        "default-src 'self'; script-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; "
        f"img-src 'self' data: blob:{extra}; connect-src 'self'{extra}; style-src 'self' 'unsafe-inline'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


def wants_html(request: Request) -> bool:
    """A browser navigating to the page (its Accept puts text/html before any JSON type)."""
    accept = request.headers.get("accept", "").lower()
    if "text/html" not in accept:
        return False
    json_at = min((accept.find(t) for t in ("application/json", "application/geo+json") if t in accept), default=-1)
    return json_at == -1 or accept.find("text/html") < json_at


def index(request: Request, dist: Path = DIST) -> Response:
    page = dist / "index.html"
    if not page.is_file():
        return problem(503, "Web app unavailable", MISSING)
    basemap = request.app.state.settings.basemap_url
    return HTMLResponse(
        page.read_text(encoding="utf-8"),
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": _csp(basemap),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def _has_tiles(request: Request) -> bool:
    """Whether this server has the vector tiles endpoint (else the page draws GeoJSON items)."""
    try:  # FastAPI >= 0.120 keeps included routers unflattened
        from fastapi.routing import iter_route_contexts

        routes = [c.original_route for c in iter_route_contexts(request.app.routes)]
    except ImportError:
        routes = list(request.app.routes)
    return any(
        getattr(r, "path", "").startswith("/collections/{collection_id}/tiles/{tile_matrix_set_id}/") for r in routes
    )


def router_for(dist: Path = DIST) -> APIRouter:
    router = APIRouter(tags=["web app"])

    @router.get("/me", response_model=Me, summary="Who this token belongs to: name, role, jurisdiction, permissions")
    def me(user: CurrentUser) -> Any:
        return {
            "name": user.name,
            "role": user.role,
            "jurisdiction": list(user.jurisdiction),
            "permissions": [p for p, roles in PERMISSIONS.items() if user.role in roles],
        }

    @router.get("/app/config.json", response_model=WebConfig, include_in_schema=False)
    def config(request: Request) -> Any:
        return {"tiles": _has_tiles(request), "basemap": request.app.state.settings.basemap_url}

    @router.get("/app/{path:path}", include_in_schema=False)
    def asset(request: Request, path: str) -> Response:
        if path in ("", "index.html"):
            return index(request, dist)
        parts = path.split("/")
        if not all(SAFE_PART.match(p) and p not in (".", "..") for p in parts):
            return problem(404, "Not found", "no such file in the web app")
        file = (dist / Path(*parts)).resolve()
        if not file.is_relative_to(dist.resolve()) or not file.is_file() or file.suffix not in MEDIA:
            if not (dist / "index.html").is_file():
                return problem(503, "Web app unavailable", MISSING)
            return problem(404, "Not found", "no such file in the web app")
        cache = "public, max-age=31536000, immutable" if HASHED.search(file.name) else "no-cache"
        return FileResponse(
            file, media_type=MEDIA[file.suffix], headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
        )

    return router


router = router_for()

__all__ = ["Me", "WebConfig", "index", "router", "router_for", "wants_html"]
