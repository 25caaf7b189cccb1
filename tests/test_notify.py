"""Area subscriptions and deliveries (redline.notify): signed webhooks with retries, e-mail with
the CSV, jurisdiction, one delivery per subscription per night, idempotent across re-runs and
SIGKILL."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import shapely

from redline import notify
from redline.auth import OPERATOR, Principal
from redline.config import Settings
from redline.errors import InputError, PermissionDeniedError
from redline.nightly import NightlyOptions, run_nightly
from redline.store import open_store

from .api.conftest import XIN, YIHE, auth, client, env  # noqa: F401  (fixtures)
from .conftest import backend_url
from .scenario import build
from .test_store import FLAG

REDLINE = str(Path(sys.executable).with_name("redline"))
AREA = shapely.box(100, 30, 120, 50)  # everything of the sample scenario


# --- a local webhook receiver and a local SMTP server --------------------------------------------


class Receiver:
    """An HTTP server in a thread: records every POST; answers the statuses queued in
    ``script`` (then 200)."""

    def __init__(self):
        self.posts: list[dict] = []
        self.script: list[int] = []
        self.delay = 0.0  # seconds each POST takes (to make concurrent senders overlap)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.delay:
                    time.sleep(outer.delay)
                outer.posts.append({"path": self.path, "headers": dict(self.headers), "raw": raw})
                status = outer.script.pop(0) if outer.script else 200
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", f"http://127.0.0.1:{outer.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[dict]:
        return [p for p in self.posts if p["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as s:  # a free port (aiosmtpd checks the one it is given by connecting to it)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    inbox.port = port
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox
    controller.stop()


def settings_for(url: str, smtp=None, **kw) -> Settings:
    return Settings(
        database_url=url,
        notify_backoff_s=0,
        notify_attempts=3,
        notify_timeout_s=5,
        smtp_host="127.0.0.1" if smtp else None,
        smtp_port=smtp.port if smtp else 25,
        smtp_starttls=False,
        public_url="https://redline.example.cn",
        **kw,
    )


def verified(post: dict, secret: str) -> dict:
    """The JSON body of a POST whose signature is that of its raw body with ``secret``."""
    expected = "sha256=" + hmac.new(secret.encode(), post["raw"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(post["headers"]["X-Redline-Signature"], expected)
    assert post["headers"]["Content-Type"] == "application/json"
    return json.loads(post["raw"])


# --- subscriptions -----------------------------------------------------------------------------

INSPECTOR_XIN = Principal("xin", "inspector", (XIN,))
INSPECTOR_YIHE = Principal("yihe", "inspector", (YIHE,))


def test_subscription_rules():
    row = notify.new_subscription(
        INSPECTOR_XIN,
        "mine",
        admin_codes=[XIN],
        min_severity="high",
        activities=["光伏"],
        webhook="https://hooks.example.cn/x",
    )
    assert row["activities"] == ["energy"] and row["kinds"] == list(notify.DEFAULT_KINDS) and len(row["secret"]) > 20
    with pytest.raises(PermissionDeniedError, match="outside your jurisdiction"):
        notify.new_subscription(INSPECTOR_YIHE, "x", admin_codes=[XIN], email="a@b.cn")
    with pytest.raises(PermissionDeniedError, match="role viewer may not subscribe"):
        notify.new_subscription(Principal("v", "viewer"), "x", admin_codes=[XIN], email="a@b.cn")
    for bad in ("ftp://x.cn/h", "file:///etc/passwd", "javascript:alert(1)", "http://", "https://u:p@x.cn/"):
        with pytest.raises(InputError):
            notify.new_subscription(OPERATOR, "x", admin_codes=[XIN], webhook=bad)
    for bad in ("a@b", "x\r\nBcc: evil@x.cn", "a b@c.cn"):
        with pytest.raises(InputError):
            notify.new_subscription(OPERATOR, "x", admin_codes=[XIN], email=bad)
    with pytest.raises(InputError, match="one of them"):
        notify.new_subscription(OPERATOR, "x", email="a@b.cn")
    with pytest.raises(InputError, match="one of them"):
        notify.new_subscription(OPERATOR, "x", admin_codes=[XIN], region=AREA, email="a@b.cn")
    with pytest.raises(InputError, match="one"):
        notify.new_subscription(OPERATOR, "x", admin_codes=[XIN], email="a@b.cn", webhook="https://x.cn")


def test_store_subscriptions_and_delivery_keys(store):
    from redline.errors import ConflictError, NotFoundError

    sub = store.add_subscription(notify.new_subscription(OPERATOR, "all", region=AREA, email="a@b.cn"))
    assert sub["region"]["type"] == "Polygon" and sub["removed_at"] is None
    with pytest.raises(ConflictError):
        store.add_subscription(notify.new_subscription(OPERATOR, "all", admin_codes=[XIN], email="a@b.cn"))
    row = {
        "subscription_id": sub["id"],
        "run_id": "r1",
        "key": f"{sub['id']}:r1",
        "flags": 1,
        "payload": {"body": {"flags": []}},
        "payload_sha256": "x",
    }
    first, new = store.add_delivery(row)
    again, new_again = store.add_delivery(row)
    assert new and not new_again and first["id"] == again["id"] and first["state"] == "pending"
    store.update_delivery(first["id"], {"state": "sent", "attempts": 1})
    assert [d["state"] for d in store.deliveries(run_id="r1")] == ["sent"]
    assert store.deliveries(states=("pending",)) == [] and store.deliveries(subscription_ids=[]) == []
    assert store.deliveries(subscription_ids=[sub["id"]])[0]["subscription"] == "all"
    store.remove_subscription("all")
    assert store.subscriptions() == [] and len(store.deliveries()) == 1
    with pytest.raises(NotFoundError):
        store.subscription("all")
    store.add_subscription(notify.new_subscription(OPERATOR, "all", admin_codes=[XIN], email="a@b.cn"))  # name free


# --- webhook sending: signature, retries, redirects, 4xx ---------------------------------------


def _one_flag_night(store, admin_code=XIN, run_id="r1") -> dict:
    fid = store.insert_flag({**FLAG, "admin_code": admin_code}, shapely.box(108, 39, 108.01, 39.01))
    brief = {k: v for k, v in store.flag(fid).items() if k != "geometry"}
    return {"run_id": run_id, "new_flags": {"flags": [brief]}, "new_observations": {"flags": []}, "totals": {}}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_webhook_is_signed_and_retried_after_a_500(request, tmp_path, backend, receiver):
    url = backend_url(request, backend, tmp_path)
    settings = settings_for(url)
    store = open_store(url)
    try:
        store.add_subscription(
            notify.new_subscription(OPERATOR, "hook", admin_codes=[XIN], webhook=receiver.url("/hook"), secret="s3cret")
        )
        night = _one_flag_night(store)
        receiver.script = [500, 503]
        sleeps = []
        (planned,) = notify.plan(store, night, settings)
        assert planned["state"] == "pending" and planned["key"].endswith(":r1")
        (done,) = notify.deliver(store, settings, sleep=sleeps.append)
        assert done["state"] == "sent" and done["attempts"] == 3
        assert sleeps == [0, 0]
        posts = receiver.at("/hook")
        assert len(posts) == 3 and len({p["raw"] for p in posts}) == 1  # the same body each time
        body = verified(posts[-1], "s3cret")
        assert {p["headers"]["X-Redline-Delivery"] for p in posts} == {planned["key"]}
        (f,) = body["flags"]
        assert set(f) >= {"id", "severity", "activity", "zone", "admin", "ha", "centroid", "link"}
        assert f["admin"]["code"] == XIN and f["link"] == f"https://redline.example.cn/flags/{f['id']}"
        assert f["centroid"] == {"lon": pytest.approx(108.005), "lat": pytest.approx(39.005)}
        assert hashlib.sha256(posts[-1]["raw"]).hexdigest() == store.deliveries()[0]["payload_sha256"]
        # the same night again: planned already, sent already
        assert notify.plan(store, night, settings) == []
        assert notify.deliver(store, settings) == []
        assert len(receiver.at("/hook")) == 3
        # a receiver that keeps failing: bounded attempts, then failed with the reason; retried on demand
        receiver.script = [500] * 3
        notify.plan(store, _one_flag_night(store, run_id="r2"), settings)
        (failed,) = notify.deliver(store, settings, sleep=lambda s: None)
        assert failed["state"] == "failed" and failed["attempts"] == 3 and "HTTP 500" in failed["last_error"]
        (retried,) = notify.notify_run(store, "r2", settings, sleep=lambda s: None)
        assert retried["state"] == "sent" and retried["attempts"] == 4
        # redirects are not followed; a 4xx is not retried
        for status, reason in ((302, "redirects are not followed"), (404, "HTTP 404")):
            receiver.script = [status]
            run = f"r-{status}"
            notify.plan(store, _one_flag_night(store, run_id=run), settings)
            (d,) = notify.deliver(store, settings, run_id=run, sleep=lambda s: None)
            assert d["state"] == "failed" and d["attempts"] == 1 and reason in d["last_error"]
        assert receiver.at("/elsewhere") == []
    finally:
        store.close()


# --- the nightly run on the sample scenario -------------------------------------------------------


def _subscribe(store, receiver, smtp_inbox=None) -> dict:
    subs = {
        "xin": store.add_subscription(
            notify.new_subscription(INSPECTOR_XIN, "xin", admin_codes=[XIN], webhook=receiver.url("/xin"), secret="xs")
        ),
        "yihe": store.add_subscription(
            notify.new_subscription(
                INSPECTOR_YIHE, "yihe", admin_codes=[YIHE], webhook=receiver.url("/yihe"), secret="ys"
            )
        ),
        # an inspector's polygon over both townships still carries only their own township's flags
        "xin-area": store.add_subscription(
            notify.new_subscription(
                INSPECTOR_XIN, "xin-area", region=AREA, webhook=receiver.url("/xin-area"), secret="xa"
            )
        ),
        "critical": store.add_subscription(
            notify.new_subscription(
                OPERATOR,
                "critical",
                region=AREA,
                min_severity="critical",
                webhook=receiver.url("/critical"),
                secret="cs",
            )
        ),
    }
    if smtp_inbox is not None:
        subs["mail"] = store.add_subscription(
            notify.new_subscription(OPERATOR, "mail", region=AREA, email="bureau@example.cn")
        )
    return subs


@pytest.mark.parametrize("backend", ["sqlite", "postgis"])
def test_nightly_on_the_sample_sends_the_expected_deliveries_once(request, tmp_path, backend, receiver, smtp):
    url = backend_url(request, backend, tmp_path)
    build(tmp_path, scan=False, url=url)
    settings = settings_for(url, smtp)
    store = open_store(url)
    try:
        _subscribe(store, receiver, smtp)
        opts = NightlyOptions(watch=[tmp_path], digest_dir=tmp_path / "digests", settle=0)
        digest = run_nightly(store, opts, settings=settings)
        new = digest["new_flags"]["flags"]
        assert {f["admin_code"] for f in new} == {XIN, YIHE}
        by_unit = {u: sorted(f["id"] for f in new if f["admin_code"] == u) for u in (XIN, YIHE)}
        # one delivery per subscription with something new, each sent once, all of this run
        assert {(d["run_id"], d["state"]) for d in digest["deliveries"]} == {(digest["run_id"], "sent")}
        posted = {
            p: [verified(x, s) for x in receiver.at(f"/{p}")]
            for p, s in (("xin", "xs"), ("yihe", "ys"), ("xin-area", "xa"), ("critical", "cs"))
        }
        assert [len(v) for v in posted.values()][:3] == [1, 1, 1]

        def ids(p, kind="new"):
            return sorted(f["id"] for f in posted[p][0]["flags"] if f["kind"] == kind)

        assert ids("xin") == by_unit[XIN] and ids("yihe") == by_unit[YIHE]
        assert ids("xin-area") == by_unit[XIN]  # never the other township's flags
        assert all(f["admin"]["code"] == XIN for f in posted["xin-area"][0]["flags"])
        critical = sorted(f["id"] for f in new if f["severity"] == "critical")
        assert len(posted["critical"]) == (1 if critical else 0)
        assert (ids("critical") if posted["critical"] else []) == critical
        # the e-mail: the area's digest as HTML with the CSV attached
        (mail,) = smtp.messages
        assert mail.rcpt_tos == ["bureau@example.cn"]
        msg = message_from_bytes(mail.content, policy=policy.default)
        assert "[redline] mail:" in msg["Subject"] and msg["Message-ID"]
        html = msg.get_body(("html",)).get_content()
        assert digest["run_id"] in html
        (attachment,) = list(msg.iter_attachments())
        assert attachment.get_content_type() == "text/csv" and attachment.get_filename().endswith(".csv")
        rows = attachment.get_content().lstrip("\ufeff").splitlines()
        assert rows[0].startswith("kind,id,severity") and len(rows) == 1 + len(new) + len(
            digest["new_observations"]["flags"]
        )
        logged = store.deliveries(run_id=digest["run_id"])
        assert len(logged) == len(digest["deliveries"]) and {d["state"] for d in logged} == {"sent"}
        assert len(logged) == sum(1 for v in posted.values() if v) + 1
        # the same night again: nothing new, nothing sent; `notify --run` sends nothing again either
        before = len(receiver.posts)
        again = run_nightly(store, opts, settings=settings)
        assert again["deliveries"] == [] and len(receiver.posts) == before and len(smtp.messages) == 1
        assert notify.notify_run(store, digest["run_id"], settings) == []  # all sent already
        assert len(receiver.posts) == before and len(smtp.messages) == 1
    finally:
        store.close()


# --- SIGKILL during delivery ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The sample scenario with its layers in an SQLite store, nothing scanned (copied per test)."""
    out = tmp_path_factory.mktemp("sample")
    build(out, scan=False)
    return out


def _night(folder: Path, environ: dict, kill: str | None = None):
    environ = {**environ}
    environ.pop("REDLINE_KILL_AT", None)
    environ.pop("REDLINE_NIGHTLY_KILL_AT", None)
    if kill:
        var, _, point = kill.partition("=")
        environ[var] = point
    return subprocess.run(
        [
            REDLINE,
            "nightly",
            "--watch",
            str(folder / "inbox"),
            "--digest-dir",
            str(folder / "digests"),
            "--settle",
            "0",
            "--json",
        ],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "kills",
    [
        ["REDLINE_NIGHTLY_KILL_AT=reported"],  # deliveries planned, none sent
        ["REDLINE_KILL_AT=delivery-sending:1"],  # killed before the first send
        ["REDLINE_KILL_AT=delivery-sending:2", "REDLINE_KILL_AT=delivery-sending:1"],  # one sent, then killed again
    ],
)
def test_sigkill_during_delivery_then_rerun_sends_each_exactly_once(tmp_path, sample, receiver, kills):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for p in sample.iterdir():
        if p.name.startswith(("change_", "landcover_")) or p.name.endswith(".csv"):
            shutil.copy(p, inbox / p.name)
    shutil.copy(sample / "store.db", tmp_path / "store.db")
    environ = {
        **os.environ,
        "REDLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "REDLINE_NOTIFY_BACKOFF_S": "0",
    }
    cli = [REDLINE]
    for name, code, secret in (("xin", XIN, "xs"), ("yihe", YIHE, "ys")):
        r = subprocess.run(
            [
                *cli,
                "subscriptions",
                "add",
                name,
                "--admin",
                code,
                "--webhook",
                receiver.url(f"/{name}"),
                "--secret",
                secret,
            ],
            env=environ,
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    listed = json.loads(
        subprocess.run([*cli, "subscriptions", "list", "--json"], env=environ, capture_output=True, text=True).stdout
    )
    assert [s["name"] for s in listed] == ["xin", "yihe"] and all("secret" not in s for s in listed)
    for kill in kills:
        r = _night(tmp_path, environ, kill)
        assert r.returncode == -9, (kill, r.stderr)
    r = _night(tmp_path, environ)
    assert r.returncode in (0, 1), r.stderr
    # each township's webhook got its delivery exactly once, whichever run sent it
    for name, secret in (("xin", "xs"), ("yihe", "ys")):
        posts = receiver.at(f"/{name}")
        assert len(posts) == 1, (name, kills, len(posts))
        verified(posts[0], secret)
    log = json.loads(
        subprocess.run([*cli, "deliveries", "list", "--json"], env=environ, capture_output=True, text=True).stdout
    )
    assert len(log) == 2 and {d["state"] for d in log} == {"sent"} and len({d["run_id"] for d in log}) == 1
    # `redline notify --run` on that run, and another night: nothing is sent again
    r = subprocess.run(
        [*cli, "notify", "--run", log[0]["run_id"], "--json"], env=environ, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert _night(tmp_path, environ).returncode in (0, 1)
    assert len(receiver.posts) == 2


# --- the API ----------------------------------------------------------------------------------


def test_api_subscriptions_inspector_within_jurisdiction(env, client, auth, receiver):  # noqa: F811
    from .api.conftest import assert_problem

    body = {"name": "api-xin", "admin_codes": [XIN], "webhook": receiver.url("/api"), "min_severity": "high"}
    assert_problem(
        client.post("/subscriptions", json={**body, "admin_codes": [YIHE]}, headers=auth("inspector")),
        403,
        "outside your jurisdiction",
    )
    assert_problem(
        client.post("/subscriptions", json={**body, "webhook": "file:///etc/passwd"}, headers=auth("inspector")), 422
    )
    r = client.post("/subscriptions", json=body, headers=auth("inspector"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["owner_role"] == "inspector" and created["secret"] and created["has_secret"]
    assert_problem(client.post("/subscriptions", json=body, headers=auth("inspector")), 409)
    mine = client.get("/subscriptions", headers=auth("inspector")).json()
    assert [s["name"] for s in mine] == ["api-xin"] and "secret" not in mine[0]
    assert client.get("/subscriptions", headers=auth("inspector_yihe")).json() == []
    assert "api-xin" in [s["name"] for s in client.get("/subscriptions", headers=auth("admin")).json()]
    assert_problem(client.delete("/subscriptions/api-xin", headers=auth("inspector_yihe")), 404)
    assert client.get("/deliveries", headers=auth("inspector")).json() == []
    assert client.delete("/subscriptions/api-xin", headers=auth("inspector")).status_code == 204
    assert client.get("/subscriptions", headers=auth("inspector")).json() == []
    region = {"type": "Polygon", "coordinates": [[[100, 30], [120, 30], [120, 50], [100, 50], [100, 30]]]}
    r = client.post(
        "/subscriptions", json={"name": "api-mail", "region": region, "email": "a@example.cn"}, headers=auth("admin")
    )
    assert r.status_code == 201 and r.json()["region"]["type"] == "Polygon" and "secret" not in r.json()
    assert client.delete("/subscriptions/api-mail", headers=auth("admin")).status_code == 204


# --- claims: two senders never send one delivery at once ------------------------------------------


def _many_pending(store, receiver, n: int, run_id: str = "rc") -> list[dict]:
    """``n`` subscriptions, each with one pending delivery of night ``run_id``."""
    for i in range(n):
        store.add_subscription(
            notify.new_subscription(
                OPERATOR, f"c{i}", admin_codes=[XIN], webhook=receiver.url(f"/c{i}"), secret=f"s{i}"
            )
        )
    return notify.plan(store, _one_flag_night(store, run_id=run_id), settings_for("sqlite:///unused.db"))


@pytest.mark.parametrize("backend", ["sqlite", "postgis"])
def test_two_concurrent_senders_send_each_delivery_exactly_once(request, tmp_path, backend, receiver):
    url = backend_url(request, backend, tmp_path)
    settings = settings_for(url)
    store = open_store(url)
    try:
        planned = _many_pending(store, receiver, 12)
        assert len(planned) == 12
        receiver.delay = 0.02  # each POST takes a while: the two senders overlap
        barrier = threading.Barrier(2)
        results: dict[int, list] = {}
        errors: list[BaseException] = []

        def sender(i: int) -> None:
            s = open_store(url)
            try:
                barrier.wait()
                results[i] = notify.deliver(s, settings, sleep=lambda _: None)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                s.close()

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        # each delivery was sent by exactly one of the senders, and received exactly once
        sent = [d["key"] for r in results.values() for d in r]
        assert sorted(sent) == sorted(d["key"] for d in planned)
        keys = [p["headers"]["X-Redline-Delivery"] for p in receiver.posts]
        assert sorted(keys) == sorted(sent)
        assert {d["state"] for d in store.deliveries()} == {"sent"}
        assert all(d["claimed_by"] and d["claimed_until"] is None for d in store.deliveries())
    finally:
        store.close()


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(store, receiver):
    (first, second) = _many_pending(store, receiver, 2)
    settings = settings_for("sqlite:///unused.db")
    # a sender that is still sending `first`: its lease runs for another hour
    assert store.claim_delivery(first["id"], "alive", "2999-01-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00")
    # a sender that died holding `second`: its lease ran out long ago
    assert store.claim_delivery(second["id"], "dead", "2000-01-01T00:00:10+00:00", "2000-01-01T00:00:00+00:00")
    assert not notify.claim(store, first, "other", settings)  # not while it lives
    (done,) = notify.deliver(store, settings, sleep=lambda _: None)
    assert done["key"] == second["key"] and done["state"] == "sent"
    assert [p["path"] for p in receiver.posts] == ["/c1"]
    by_key = {d["key"]: d for d in store.deliveries()}
    assert by_key[first["key"]]["state"] == "pending" and by_key[first["key"]]["claimed_by"] == "alive"
    assert by_key[second["key"]]["claimed_by"] != "dead"
    # the holder may renew its own lease; a sent delivery is nobody's to claim again
    assert store.claim_delivery(first["id"], "alive", "2999-01-02T00:00:00+00:00", "2026-12-02T00:00:00+00:00")
    assert not notify.claim(store, by_key[second["key"]], "other", settings)


# --- overdue rectification deadlines: one delivery per subscription per day ----------------------


def _on_ledger(store, admin_code: str, deadline: str) -> int:
    """A flag of ``admin_code`` on the rectification ledger (rectifying) with ``deadline``."""
    from datetime import date

    from redline.workflow import move

    fid = store.insert_flag({**FLAG, "admin_code": admin_code}, shapely.box(108, 39, 108.01, 39.01))
    day = date.fromisoformat("2026-07-01")
    move(store, fid, "dispatched", "insp", principal=OPERATOR, today=day)
    move(store, fid, "verified_violation", "insp", "pit", principal=OPERATOR, today=day)
    move(
        store,
        fid,
        "rectifying",
        "insp",
        "plan",
        principal=OPERATOR,
        today=day,
        ledger={"responsible": "旗自然资源局", "deadline": deadline},
    )
    return fid


def _posted_ids(receiver, path: str) -> list[list[int]]:
    return [sorted(f["id"] for f in json.loads(p["raw"])["flags"]) for p in receiver.at(path)]


def test_overdue_deadlines_are_delivered_once_per_day(store, receiver, smtp):
    from datetime import date

    url = "sqlite:///unused.db"
    settings = settings_for(url, smtp)
    xin_late = _on_ledger(store, XIN, "2026-08-31")
    yihe_late = _on_ledger(store, YIHE, "2026-08-31")
    xin_later = _on_ledger(store, XIN, "2026-09-30")
    subs = [
        # an inspector's polygon over both townships: only their own township's problems
        notify.new_subscription(
            INSPECTOR_XIN, "xin", region=AREA, kinds=["overdue"], webhook=receiver.url("/xin"), secret="x"
        ),
        notify.new_subscription(
            OPERATOR, "yihe", admin_codes=[YIHE], kinds=["overdue"], webhook=receiver.url("/yihe"), secret="y"
        ),
        notify.new_subscription(OPERATOR, "mail", region=AREA, kinds=["overdue", "new"], email="bureau@example.cn"),
        notify.new_subscription(OPERATOR, "nightly-only", region=AREA, webhook=receiver.url("/new"), secret="n"),
    ]
    for s in subs:
        store.add_subscription(s)
    # on the deadline day nothing is overdue yet
    assert notify.notify_overdue(store, date(2026, 8, 31), settings) == []
    # the day after: one delivery each, with exactly the area's and jurisdiction's overdue problems
    sent = notify.notify_overdue(store, date(2026, 9, 1), settings, sleep=lambda _: None)
    assert sorted(d["subscription"] for d in sent) == ["mail", "xin", "yihe"]
    assert {d["state"] for d in sent} == {"sent"} and {d["run_id"] for d in sent} == {"overdue-2026-09-01"}
    assert _posted_ids(receiver, "/xin") == [[xin_late]]
    assert _posted_ids(receiver, "/yihe") == [[yihe_late]]
    assert receiver.at("/new") == []
    body = verified(receiver.at("/xin")[0], "x")
    assert body["event"] == "redline.overdue" and body["date"] == "2026-09-01"
    assert receiver.at("/xin")[0]["headers"]["X-Redline-Event"] == "redline.overdue"
    (f,) = body["flags"]
    assert f["kind"] == "overdue" and f["deadline"] == "2026-08-31" and f["overdue_days"] == 1
    assert f["responsible"] == "旗自然资源局"
    (mail,) = smtp.messages
    msg = message_from_bytes(mail.content, policy=policy.default)
    assert "2 rectification deadlines overdue (2026-09-01)" in msg["Subject"]
    (attachment,) = list(msg.iter_attachments())
    rows = attachment.get_content().lstrip("\ufeff").splitlines()
    assert len(rows) == 3 and rows[0].startswith("id,")
    # the same day again: nothing planned, nothing sent
    assert notify.plan_overdue(store, date(2026, 9, 1), settings) == []
    assert notify.notify_overdue(store, date(2026, 9, 1), settings) == []
    assert len(receiver.posts) == 2 and len(smtp.messages) == 1
    # the next day: once more (still overdue, two days now); the later deadline not yet
    notify.notify_overdue(store, date(2026, 9, 2), settings, sleep=lambda _: None)
    assert _posted_ids(receiver, "/xin") == [[xin_late], [xin_late]]
    assert json.loads(receiver.at("/xin")[1]["raw"])["flags"][0]["overdue_days"] == 2
    # past both deadlines
    notify.notify_overdue(store, date(2026, 10, 1), settings, sleep=lambda _: None)
    assert _posted_ids(receiver, "/xin")[-1] == sorted([xin_late, xin_later])
    assert len(store.deliveries()) == 9


def test_overdue_by_cli_and_by_the_nightly_run_once_a_day(tmp_path, receiver, monkeypatch):
    from typer.testing import CliRunner

    from redline.cli import app

    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        late = _on_ledger(store, XIN, "2026-08-31")
        store.add_subscription(
            notify.new_subscription(
                OPERATOR, "late", admin_codes=[XIN], kinds=["overdue"], webhook=receiver.url("/late"), secret="l"
            )
        )
    finally:
        store.close()
    runner = CliRunner()
    environ = {"REDLINE_DATABASE_URL": url, "REDLINE_NOTIFY_BACKOFF_S": "0"}
    for _ in range(2):  # twice on the same day: sent once
        r = runner.invoke(app, ["notify", "--overdue", "--on", "2026-09-01", "--json"], env=environ)
        assert r.exit_code == 0, r.output
        (d,) = json.loads(r.output)
        assert d["run_id"] == "overdue-2026-09-01" and d["state"] == "sent"
    assert _posted_ids(receiver, "/late") == [[late]]
    # mistakes: one clear line from the real command
    for args, said in ((["--overdue", "--on", "1.9.2026"], "is not a date"), (["--on", "2026-09-01"], "--overdue")):
        p = subprocess.run([REDLINE, "notify", *args], env={**os.environ, **environ}, capture_output=True, text=True)
        assert p.returncode == 2 and said in p.stderr and "Traceback" not in p.stderr, p.stderr
    # the nightly run plans the day's (by the engine's clock) once, however often it runs that day
    monkeypatch.setattr(notify, "now", lambda: "2026-09-05T01:00:00+00:00")
    (tmp_path / "inbox").mkdir()
    store = open_store(url)
    try:
        opts = NightlyOptions(watch=[tmp_path / "inbox"], digest_dir=tmp_path / "digests", settle=0)
        for _ in range(2):
            run_nightly(store, opts, settings=settings_for(url))
        assert _posted_ids(receiver, "/late") == [[late], [late]]
        assert [d["run_id"] for d in store.deliveries()] == ["overdue-2026-09-01", "overdue-2026-09-05"]
    finally:
        store.close()


def test_the_lease_of_a_sender_killed_on_this_host_is_taken_over_at_once(store, receiver):
    import socket

    (first,) = _many_pending(store, receiver, 1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    held_by = f"{socket.gethostname()}:{dead.stdout.strip()}:abc"
    alive = f"{socket.gethostname()}:{os.getpid()}:def"
    for holder, sent in ((alive, False), (held_by, True)):  # a live process's lease stands; a dead one's does not
        assert store.claim_delivery(
            first["id"], holder, "2999-01-01T00:00:00+00:00", "2026-12-02T00:00:00+00:00", take_from=alive
        )
        done = notify.deliver(store, settings_for("sqlite:///unused.db"), sleep=lambda _: None)
        assert [d["key"] for d in done] == ([first["key"]] if sent else [])
    assert len(receiver.posts) == 1


def test_two_notify_processes_at_once_send_each_delivery_exactly_once(tmp_path, receiver):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(url)
    try:
        planned = _many_pending(store, receiver, 10)
    finally:
        store.close()
    receiver.delay = 0.2  # two seconds of sending each: the two commands overlap
    environ = {**os.environ, "REDLINE_DATABASE_URL": url, "REDLINE_NOTIFY_BACKOFF_S": "0"}
    procs = [
        subprocess.Popen([REDLINE, "notify", "--json"], env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outs]
    sent = [d["key"] for out, _ in outs for d in json.loads(out)]
    assert sorted(sent) == sorted(d["key"] for d in planned)  # between them, each once
    assert sorted(p["headers"]["X-Redline-Delivery"] for p in receiver.posts) == sorted(sent)
