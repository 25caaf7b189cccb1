"""``redline serve``: the HTTP API (uvicorn) on the configured store."""

from __future__ import annotations

from typing import Annotated

import typer

from ..config import get_settings


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default REDLINE_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default REDLINE_PORT or 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
):
    """Serve the HTTP API: checks, screenings, OGC API Features, workflow, exports."""
    import os

    import uvicorn

    from .options import State

    if State.database_url:  # --db given on the command line reaches the app through the environment
        os.environ["REDLINE_DATABASE_URL"] = State.database_url
    settings = get_settings()
    # The web layer is loaded by import string: the engine itself never imports it.
    uvicorn.run("api.app:create_app", factory=True, host=host or settings.host, port=port or settings.port,
                workers=workers, proxy_headers=True)
