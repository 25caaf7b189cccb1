"""``redline serve``: the HTTP API (uvicorn) on the configured store."""

from __future__ import annotations

from typing import Annotated

import typer

from .options import settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default REDLINE_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REDLINE_PORT or 8000).")] = None,
):
    """Serve the HTTP API: checks, screenings, OGC API Features and Tiles, workflow, exports,
    the web app. One server process; CPU-heavy requests run in its worker processes
    (REDLINE_WORK_PROCESSES)."""
    import importlib

    import uvicorn

    cfg = settings()
    # The web layer is imported here, by name: the engine itself never imports it.
    app = importlib.import_module("api.app").create_app(cfg)
    uvicorn.run(app, host=host or cfg.host, port=port or cfg.port, proxy_headers=True)
