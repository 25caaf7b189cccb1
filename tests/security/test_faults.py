"""Faults: real processes SIGKILLed mid-work, the database going away, clients that hang up.

Each process is a real one (the ``redline`` CLI, or ``redline serve`` on a free port),
killed with SIGKILL at a named point, either one of the engine's checkpoints
(``REDLINE_KILL_AT``, see redline/faults.py) or a call of an engine function picked by
``_killer.py`` (``KILL_IN``). Afterwards the store holds nothing half-written (a scan
whole or not at all, a flag's status and its audit entry both or neither, an evidence
row and its audit entry and its file all three or none), the scans ledger is not stuck
(a re-run scans), an export leaves no partial file at its destination, and the evidence
folder holds no file without a row once recovered.

The PostGIS outage test runs a private PostgreSQL instance (initdb + pg_ctl, as the
``postgres`` OS user when run as root) so that stopping it disturbs nobody else's tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from redline.auth import create_token
from redline.store import open_store

from ..scenario import build

REDLINE = str(Path(sys.executable).with_name("redline"))
KILLER = str(Path(__file__).with_name("_killer.py"))
ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("REDLINE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + bytes(range(256)) * 1024 + b"\xff\xd9"  # ~256 KiB: 5 chunks


# --- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(db: Path | str, **extra) -> dict:
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    env = {**os.environ, "REDLINE_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    for k in ("REDLINE_KILL_AT", "KILL_IN"):
        env.pop(k, None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_cli(
    env: dict,
    *args,
    kill_in: str | None = None,
    kill_at: str | None = None,
    after: float | None = None,
    timeout: float = 120,
):
    """Run ``redline ARGS`` (through _killer.py when a kill is asked); (returncode, stdout, stderr)."""
    env = dict(env)
    if kill_in:
        env["KILL_IN"] = kill_in
    if kill_at:
        env["REDLINE_KILL_AT"] = kill_at
    cmd = [sys.executable, KILLER, *map(str, args)] if kill_in else [REDLINE, *map(str, args)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if after is not None:
        try:
            proc.wait(after)
        except subprocess.TimeoutExpired:
            proc.kill()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


class Server:
    """``redline serve`` on a free port (through _killer.py when ``kill_in`` is given)."""

    def __init__(self, env: dict, log: Path, kill_in: str | None = None, kill_at: str | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = dict(env)
        if kill_in:
            env["KILL_IN"] = kill_in
        if kill_at:
            env["REDLINE_KILL_AT"] = kill_at
        cmd = [sys.executable, KILLER] if kill_in else [REDLINE]
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(self.port)], env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"server did not start:\n{log.read_text()}")

    def request(self, method: str, path: str, token: str | None = None, timeout: float = 30, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.base + path, headers=headers, timeout=timeout, **kw)

    def died(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def snapshot(db: Path) -> dict:
    """What the store holds, minus wall-clock times."""
    con = sqlite3.connect(db)
    drop = {
        "scans": ("started_at", "finished_at"),
        "flags": ("created_at", "updated_at"),
        "audit": ("at",),
        "evidence": ("at",),
    }
    out = {}
    for table in ("scans", "flags", "observations", "conflicts", "audit", "evidence"):
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})") if r[1] not in drop.get(table, ())]
        out[table] = con.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY 1").fetchall()
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    return out


# --- the sample scenario, once per module --------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """Two stores built from the sample scenario: layers only, and scanned (flags to move)."""
    out = tmp_path_factory.mktemp("faults")
    build(out, scan=False, url=f"sqlite:///{out / 'layers.db'}")
    build(out, scan=True, url=f"sqlite:///{out / 'scanned.db'}")
    store = open_store(f"sqlite:///{out / 'scanned.db'}")
    token = create_token(store, "root", "admin")
    flags = [f["id"] for f in store.flags(with_geometry=False)]
    store.close()
    return {"out": out, "layers": out / "layers.db", "scanned": out / "scanned.db", "token": token, "flags": flags}


@pytest.fixture
def scanned(sample, tmp_path):
    db = tmp_path / "store.db"
    shutil.copy(sample["scanned"], db)
    return db


# --- (a) scans ------------------------------------------------------------------------------


def test_scan_killed_at_any_moment_leaves_all_or_nothing_and_rerun_scans(sample, tmp_path):
    product = sample["out"] / "change_2026-09.tif"
    before = snapshot(sample["layers"])
    base = tmp_path / "base.db"
    shutil.copy(sample["layers"], base)
    t0 = time.monotonic()
    rc, _, err = run_cli(_env(base), "scan", product)
    seconds = time.monotonic() - t0
    assert rc == 0, err
    expected = snapshot(base)
    assert expected["flags"] and expected["scans"]

    kills = [
        dict(kill_in="redline.scan:_record:before:1"),  # in the write transaction, nothing written yet
        dict(kill_in="redline.scan:_record:after:1"),  # in the transaction, a flag written
        dict(kill_in="redline.store.sqlite:SQLiteStore.transaction:before:1"),  # all read, before writing
        *[dict(after=share * seconds) for share in (0.3, 0.6, 0.9)],
    ]  # wherever it is
    killed = 0
    for kill in kills:
        db = tmp_path / "killed.db"
        shutil.copy(sample["layers"], db)
        rc, _, err = run_cli(_env(db), "scan", product, **kill)
        if "kill_in" in kill:
            assert rc == -9, (kill, err)
        killed += rc == -9
        state = snapshot(db)
        assert state in (before, expected), kill  # whole or not at all
        rc, out, err = run_cli(_env(db), "scan", product, "--json")  # the ledger is not stuck
        assert rc == 0, err
        assert snapshot(db) == expected, kill
        for p in db.parent.glob("killed.db-*"):  # WAL/journal files from the killed writer are folded back
            assert p.name in ("killed.db-wal", "killed.db-shm"), p
    assert killed >= 4


# --- (b) exports ----------------------------------------------------------------------------


def _features(path: Path) -> int:
    import pyogrio

    if path.suffix == ".zip":
        return pyogrio.read_info(f"/vsizip/{path}/flags.shp")["features"]
    return pyogrio.read_info(path)["features"]


@pytest.mark.parametrize("name", ["flags.gpkg", "flags.zip", "flags.geojson"])
def test_export_killed_leaves_no_partial_file_and_the_next_cleans_up(sample, scanned, tmp_path, name):
    n = len(sample["flags"])
    dest_dir = tmp_path / "exports"
    dest_dir.mkdir()
    dest = dest_dir / name
    env = _env(scanned)
    # killed once the temp file is whole, before the rename; killed inside the writer
    for kill in (dict(kill_at="export-written"), dict(kill_in="pyogrio:write_dataframe:before:1")):
        rc, _, err = run_cli(env, "export", dest, **kill)
        assert rc == -9, err
        assert not dest.exists()
        assert [p.name for p in dest_dir.iterdir() if not p.name.startswith(".redline-export-")] == []
    # an earlier good export survives a killed one whole
    rc, _, err = run_cli(env, "export", dest)
    assert rc == 0, err
    good = dest.read_bytes()
    rc, _, err = run_cli(env, "export", dest, kill_at="export-written")
    assert rc == -9
    assert dest.read_bytes() == good and _features(dest) == n
    # the next export removes what the killed ones left behind
    rc, _, err = run_cli(env, "export", dest, "--json")
    assert rc == 0, err
    assert sorted(p.name for p in dest_dir.iterdir()) == [name]
    assert _features(dest) == n


def test_export_in_progress_is_not_cleaned_up_by_another(tmp_path):
    from redline.export import _work_dir, remove_stale_work_dirs

    with _work_dir(tmp_path) as work:
        assert remove_stale_work_dirs(tmp_path) == [] and work.is_dir()  # its lock is held
    assert list(tmp_path.iterdir()) == []


# --- (c) workflow ---------------------------------------------------------------------------


def _status_and_moves(db: Path, flag_id: int) -> tuple[str, list]:
    store = open_store(f"sqlite:///{db}")
    try:
        status = store.flag(flag_id)["status"]
        moves = [(e["detail"]["from"], e["detail"]["to"]) for e in store.history(flag_id) if e["action"] == "status"]
    finally:
        store.close()
    return status, moves


@pytest.mark.parametrize(
    "kill_in",
    [
        "redline.workflow:allowed_next:after:1",  # in the transaction, before it writes
        "redline.store.sqlite:SQLiteStore.update_flag:before:1",  # in the transaction, nothing written
        "redline.store.sqlite:SQLiteStore.audit:before:1",  # status written, audit not yet
        "redline.store.sqlite:SQLiteStore.audit:after:1",  # both written, not committed
    ],
)
def test_workflow_move_killed_in_the_server_leaves_status_and_audit_together(sample, scanned, tmp_path, kill_in):
    fid = sample["flags"][0]
    assert _status_and_moves(scanned, fid) == ("new", [])
    with Server(_env(scanned, REDLINE_EVIDENCE_DIR=tmp_path / "ev"), tmp_path / "serve.log", kill_in=kill_in) as srv:
        with pytest.raises(httpx.HTTPError):  # the server dies under the request
            srv.request("PATCH", f"/flags/{fid}", sample["token"], json={"status": "dispatched", "note": "go"})
        assert srv.died() == -9
    assert _status_and_moves(scanned, fid) == ("new", [])  # neither the status nor its audit entry
    # the store is usable and the move can be made now
    with Server(_env(scanned, REDLINE_EVIDENCE_DIR=tmp_path / "ev"), tmp_path / "serve2.log") as srv:
        r = srv.request("PATCH", f"/flags/{fid}", sample["token"], json={"status": "dispatched"})
        assert r.status_code == 200, r.text
    assert _status_and_moves(scanned, fid) == ("dispatched", [("new", "dispatched")])


def test_workflow_move_killed_after_commit_has_both(sample, scanned, tmp_path):
    fid = sample["flags"][1]
    code = (
        "import os, signal, sys\nfrom redline.store import open_store\nfrom redline.workflow import move\n"
        "s = open_store(sys.argv[1])\nmove(s, int(sys.argv[2]), 'dispatched', 'field', 'seen')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{scanned}", str(fid)],
        capture_output=True,
        text=True,
        env=_env(scanned),
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    assert _status_and_moves(scanned, fid) == ("dispatched", [("new", "dispatched")])


# --- (d) evidence uploads -------------------------------------------------------------------


def evidence_state(db: Path, root: Path, flag_id: int) -> dict:
    store = open_store(f"sqlite:///{db}")
    try:
        rows = store.evidence(flag_id)
        audited = sorted(e["detail"]["evidence_id"] for e in store.history(flag_id) if e["action"] == "evidence")
    finally:
        store.close()
    folder = root / str(flag_id)
    files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return {"rows": rows, "audited": audited, "files": files}


def assert_consistent(state: dict) -> None:
    """Every row has its audit entry and its whole file; every file has its row; no temp file."""
    assert state["audited"] == sorted(r["id"] for r in state["rows"])
    assert state["files"] == sorted(r["stored_name"] for r in state["rows"]), state


@pytest.mark.parametrize(
    "point, committed",
    [
        ("evidence-writing:2", False),  # mid-file
        ("evidence-written", False),  # the whole file in its temp name, no row
        ("evidence-in-transaction", False),  # row and audit written, not committed
        ("evidence-committed", True),  # committed, not yet renamed into place
    ],
)
def test_evidence_upload_killed_leaves_no_orphan_and_no_half_row(sample, scanned, tmp_path, point, committed):
    fid = sample["flags"][2]
    root = tmp_path / "evidence"
    env = _env(scanned, REDLINE_EVIDENCE_DIR=root)
    with Server(env, tmp_path / "serve.log", kill_at=point) as srv:
        with pytest.raises(httpx.HTTPError):
            srv.request(
                "POST",
                f"/flags/{fid}/evidence",
                sample["token"],
                files={"file": ("site.jpg", JPEG)},
                data={"note": "pit"},
            )
        assert srv.died() == -9
    state = evidence_state(scanned, root, fid)
    assert len(state["rows"]) == int(committed) and state["audited"] == [r["id"] for r in state["rows"]]
    assert [n for n in state["files"] if not n.startswith(".upload-")] == []  # nothing in place before the rename
    if committed:
        # the committed upload is finished by the first reader that misses its file
        with Server(env, tmp_path / "serve2.log") as srv:
            r = srv.request("GET", f"/evidence/{state['rows'][0]['id']}", sample["token"])
            assert r.status_code == 200 and r.content == JPEG
    rc, out, err = run_cli(env, "evidence", "recover", "--json")
    assert rc == 0, err
    report = json.loads(out)
    assert report["removed_temp"] == ([] if committed else [f"{fid}/{state['files'][0]}"])
    after = evidence_state(scanned, root, fid)
    assert_consistent(after)
    for row in after["rows"]:
        data = (root / str(fid) / row["stored_name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and data == JPEG
    # and the next upload works, recovering the folder first
    with Server(env, tmp_path / "serve3.log") as srv:
        r = srv.request("POST", f"/flags/{fid}/evidence", sample["token"], files={"file": ("b.jpg", JPEG)})
        assert r.status_code == 201, r.text
    assert_consistent(evidence_state(scanned, root, fid))


def test_evidence_server_killed_mid_body_writes_nothing(sample, scanned, tmp_path):
    fid = sample["flags"][2]
    root = tmp_path / "evidence"
    with Server(_env(scanned, REDLINE_EVIDENCE_DIR=root), tmp_path / "serve.log") as srv:
        body = (
            b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n" + JPEG[:100_000]
        )
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(
                f"POST /flags/{fid}/evidence HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sample['token']}\r\n"
                f"Content-Type: multipart/form-data; boundary=xx\r\nContent-Length: 400000\r\n\r\n".encode()
                + body
            )
            time.sleep(0.3)
            srv.proc.kill()
        assert srv.died() == -9
    assert evidence_state(scanned, root, fid) == {"rows": [], "audited": [], "files": []}


def test_recover_leaves_uploads_in_progress_and_removes_orphans(sample, scanned, tmp_path):
    import fcntl

    from redline.evidence import recover

    fid = sample["flags"][0]
    folder = tmp_path / "evidence" / str(fid)
    folder.mkdir(parents=True)
    live = folder / ".upload-0123456789abcdef0123456789abcdef.jpg"
    fd = os.open(live, os.O_WRONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    orphan = folder / "fedcba9876543210fedcba9876543210.png"
    orphan.write_bytes(b"x")
    dead = folder / ".upload-00000000000000000000000000000000.pdf"
    dead.write_bytes(b"%PDF-")
    store = open_store(f"sqlite:///{scanned}")
    try:
        dry = recover(store, tmp_path / "evidence", dry_run=True)
        assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, orphan.name, dead.name])
        report = recover(store, tmp_path / "evidence")
    finally:
        store.close()
        os.close(fd)
    assert dry.summary() == report.summary()
    assert report.in_progress == [f"{fid}/{live.name}"]
    assert report.removed_temp == [f"{fid}/{dead.name}"] and report.removed_orphans == [f"{fid}/{orphan.name}"]
    assert [p.name for p in folder.iterdir()] == [live.name]


# --- clients that hang up mid-body ------------------------------------------------------------


def test_client_disconnect_mid_body_logs_no_traceback_and_server_keeps_answering(sample, scanned, tmp_path):
    log = tmp_path / "serve.log"
    fid = sample["flags"][0]
    token = sample["token"]
    heads = [
        ("/checks", "application/json", b'{"type": "Feature", "geometry": {"type": "Polygon", '),
        (
            "/checks",
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.geojson"\r\n\r\n{"type"',
        ),
        (
            f"/flags/{fid}/evidence",
            "multipart/form-data; boundary=xx",
            b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n' + JPEG[:5000],
        ),
        ("/screenings", "application/json", b'{"geometry": '),
        (f"/flags/{fid}", "application/json", b'{"status": '),
        ("/checks", "application/json", b""),  # headers only
    ]
    with Server(_env(scanned, REDLINE_EVIDENCE_DIR=tmp_path / "ev"), log) as srv:
        for path, ctype, body in heads:
            method = "PATCH" if path == f"/flags/{fid}" else "POST"
            with socket.create_connection(("127.0.0.1", srv.port)) as s:
                s.sendall(
                    f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: {ctype}\r\nContent-Length: {len(body) + 100_000}\r\n\r\n".encode()
                    + body
                )
                time.sleep(0.2)
        time.sleep(0.5)
        assert srv.request("GET", "/health").status_code == 200
        r = srv.request("GET", "/collections/flags/items?limit=2", token)
        assert r.status_code == 200
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text
    assert not list((tmp_path / "ev").rglob("*.jpg"))


# --- PostGIS going away -----------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL instance of its own (data folder in /tmp, free port), started and stopped
    by the test; run as the ``postgres`` OS user when we are root (initdb refuses root)."""

    def __init__(self):
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).is_file():
                pytest.fail(
                    f"cannot run a private PostgreSQL: {PG_BIN / tool} is missing "
                    "(install PostgreSQL 15 and PostGIS: scripts/provision_postgis.sh)",
                    pytrace=False,
                )
        self.as_user = []
        self.folder = Path(tempfile.mkdtemp(prefix="redline-pg-"))
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("cannot run a private PostgreSQL as root: no `postgres` OS user", pytrace=False)
            os.chown(self.folder, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"
        self.port = free_port()
        self._run("initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        self.start()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/redline"
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE redline")
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION postgis")
        except psycopg.Error as exc:
            self.close()
            pytest.fail(
                f"the private PostgreSQL has no PostGIS: {exc} (scripts/provision_postgis.sh installs it)",
                pytrace=False,
            )

    def _run(self, tool: str, *args) -> None:
        proc = subprocess.run(
            [*self.as_user, str(PG_BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            pytest.fail(
                f"cannot run a private PostgreSQL: {tool} failed: {proc.stderr.strip() or proc.stdout}", pytrace=False
            )

    def start(self) -> None:
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-D",
            self.data,
            "-l",
            self.folder / "log",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "stop", "-w", "-D", self.data, "-m", "immediate")

    def close(self) -> None:
        subprocess.run(
            [*self.as_user, str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_pg():
    pg = PrivatePostgres()
    try:
        yield pg
    finally:
        pg.close()


def _problem_503(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 503


def test_postgis_stopped_answers_503_and_recovers_when_it_returns(private_pg, tmp_path):
    out = tmp_path / "scenario"
    out.mkdir()
    build(out, url=private_pg.url)
    store = open_store(private_pg.url)
    token = create_token(store, "root", "admin")
    store.close()
    log = tmp_path / "serve.log"
    with Server(_env(private_pg.url, REDLINE_EVIDENCE_DIR=tmp_path / "ev"), log) as srv:
        items = srv.request("GET", "/collections/flags/items?limit=2", token)
        assert items.status_code == 200, items.text
        matched = items.json()["numberMatched"]
        for _ in range(4):  # several pooled connections, all dead once the server stops
            assert srv.request("GET", "/ready").status_code == 200

        private_pg.stop()
        for path, tok in (
            ("/ready", None),
            ("/collections/flags/items?limit=2", token),
            ("/ready", None),
            (f"/flags/{items.json()['features'][0]['id']}", token),
        ):
            r = srv.request("GET", path, tok, timeout=20)  # an answer, not a hang
            _problem_503(r)
        assert srv.request("GET", "/health").status_code == 200  # alive, only not ready

        private_pg.start()
        deadline = time.monotonic() + 30
        while (r := srv.request("GET", "/ready")).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert r.status_code == 200, r.text
        again = srv.request("GET", "/collections/flags/items?limit=2", token)
        assert again.status_code == 200 and again.json()["numberMatched"] == matched
    text = log.read_text()
    assert "Traceback" not in text, text


def test_postgis_store_errors_are_store_errors_in_the_engine(private_pg):
    from redline.errors import StoreError

    build_url = private_pg.url
    store = open_store(build_url)  # an empty database: the schema is made
    store.layer_versions()
    private_pg.stop()
    try:
        with pytest.raises(StoreError, match="unavailable"):
            store.layer_versions()
        with pytest.raises(StoreError):
            with store.transaction():
                store.audit(1, "x", "status", {})
        with pytest.raises(StoreError, match="cannot connect"):
            open_store(build_url)
    finally:
        store.close()
    private_pg.start()
    store = open_store(build_url)
    assert store.layer_versions() == []
    store.close()
