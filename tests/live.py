"""A real ``redline serve`` in a child process, for the tests that need a live server (GDAL's
OAPIF client, the browser) and for the benchmark scripts: one way to start it on a free port,
wait until it answers, and stop it with its worker processes; and the browser they drive."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
REDLINE = str(Path(sys.executable).parent / "redline")
# the browser of the browser tests and the map benchmark: Debian's chromium
# (scripts/provision_browser.sh), headless, software WebGL, nothing fetched of its own
CHROMIUM = os.environ.get("REDLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """``redline serve`` over the store at ``url`` on a free port, logging to ``log``; ``env``
    adds to (or, with a None value, removes from) this process's environment. A context
    manager: entered once ``/health`` answers (RuntimeError with the log's tail if it does not
    within ``timeout`` seconds), left with the server and its workers stopped."""

    def __init__(self, url: str, log: Path, env: dict[str, str | None] | None = None, timeout: float = 60):
        self.url, self.log_path, self.timeout = url, log, timeout
        self.env = {**os.environ, "REDLINE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}  # this checkout's redline
        for key, value in (env or {}).items():
            if value is None:
                self.env.pop(key, None)
            else:
                self.env[key] = value
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def start(self) -> LiveServer:
        """Start the server; RuntimeError, with the log's tail, when it does not answer."""
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [REDLINE, "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its workers
        )
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redline serve did not start: {tail}")
            time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
