"""Token life cycle: created, listed and revoked through the ``redline tokens`` CLI (the real
entry point), on both backends; a revoked token is refused by the API. Inspector tokens must be
bound to units: creating one without is refused, and a stored row without units (written around
``create_token``) grants nothing."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from redline.auth import Principal, authenticate, create_token
from redline.config import Settings
from redline.errors import AuthenticationError, InputError, PermissionDeniedError
from redline.store import open_store

from ..conftest import BACKENDS, backend_url
from .conftest import XIN, assert_problem

REDLINE = str(Path(sys.executable).with_name("redline"))


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDLINE_DATABASE_URL": url}
    return subprocess.run([REDLINE, *args], capture_output=True, text=True, env=env, timeout=120)


def one_line_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = " ".join(ln for ln in proc.stderr.splitlines() if ln.strip())
    assert text.startswith("error:"), proc.stderr
    for f in fragments:
        assert f in text, proc.stderr


@pytest.fixture(params=BACKENDS)
def url(request, tmp_path):
    u = backend_url(request, request.param, tmp_path)
    open_store(u).close()  # schema
    return u


def test_cli_create_list_revoke_and_the_api_refuses_the_revoked_token(url, tmp_path):
    made = cli(url, "tokens", "create", "field-1", "--role", "inspector", "--admin", XIN, "--json")
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["role"] == "inspector" and created["jurisdiction"] == [XIN]
    token = created["token"]
    other = json.loads(cli(url, "tokens", "create", "desk", "--role", "viewer", "--json").stdout)["token"]

    listed = json.loads(cli(url, "tokens", "list", "--json").stdout)
    assert [(t["name"], t["role"], t["jurisdiction"], t["revoked_at"]) for t in listed] == [
        ("field-1", "inspector", [XIN], None),
        ("desk", "viewer", [], None),
    ]
    assert token not in json.dumps(listed)  # the value is shown once, never listed
    assert hashlib.sha256(token.encode()).hexdigest() not in json.dumps(listed)

    settings = Settings(database_url=url, data_dir=tmp_path, evidence_dir=tmp_path / "evidence")
    with TestClient(create_app(settings)) as client:
        assert client.get("/collections", headers={"Authorization": f"Bearer {token}"}).status_code == 200

        revoked = cli(url, "tokens", "revoke", str(listed[0]["id"]))
        assert revoked.returncode == 0, revoked.stderr
        assert f"token {listed[0]['id']} revoked" in revoked.stdout

        r = client.get("/collections", headers={"Authorization": f"Bearer {token}"})
        assert_problem(r, 401, "invalid or revoked")
        assert r.headers["www-authenticate"] == "Bearer"
        # the other token is untouched
        assert client.get("/collections", headers={"Authorization": f"Bearer {other}"}).status_code == 200

    after = {t["name"]: t for t in json.loads(cli(url, "tokens", "list", "--json").stdout)}
    assert after["field-1"]["revoked_at"] and after["desk"]["revoked_at"] is None
    store = open_store(url)
    try:
        with pytest.raises(AuthenticationError, match="invalid or revoked"):
            authenticate(store, token)
        assert authenticate(store, other).role == "viewer"
    finally:
        store.close()


def test_cli_refusals_are_one_line(url):
    one_line_error(cli(url, "tokens", "create", "nobody", "--role", "inspector"), "needs a jurisdiction")
    one_line_error(cli(url, "tokens", "create", "blank", "--role", "inspector", "--admin", " "), "needs a jurisdiction")
    one_line_error(cli(url, "tokens", "create", "x", "--role", "root"), "unknown role")
    one_line_error(cli(url, "tokens", "revoke", "424242"), "token 424242 does not exist")
    assert json.loads(cli(url, "tokens", "list", "--json").stdout) == []  # nothing was written


def test_revoke_on_the_store(store):
    """``revoke_token`` on each backend: the token stops authenticating, its row stays (audit),
    revoking twice keeps it revoked, an unknown id is an error."""
    token = create_token(store, "a", "analyst")
    keep = create_token(store, "b", "admin")
    tid = next(t["id"] for t in store.tokens() if t["name"] == "a")
    assert authenticate(store, token).name == "a"
    store.revoke_token(tid)
    with pytest.raises(AuthenticationError):
        authenticate(store, token)
    store.revoke_token(tid)
    with pytest.raises(AuthenticationError):
        authenticate(store, token)
    assert [t["name"] for t in store.tokens()] == ["a", "b"]
    assert authenticate(store, keep).role == "admin"
    from redline.errors import NotFoundError

    with pytest.raises(NotFoundError):
        store.revoke_token(999_999)


@pytest.mark.parametrize("jurisdiction", [None, [], [""], ["  ", ""]])
def test_create_token_refuses_an_inspector_without_units(store, jurisdiction):
    with pytest.raises(InputError, match="needs a jurisdiction"):
        create_token(store, "i", "inspector", jurisdiction)
    assert store.tokens() == []


@pytest.mark.parametrize("stored", [[], [""], [" ", "\t"]])
def test_stored_inspector_without_units_is_refused_not_everywhere(store, stored):
    token = f"rl_{secrets.token_urlsafe(32)}"
    store.add_token("nowhere", "inspector", stored, hashlib.sha256(token.encode()).hexdigest())
    with pytest.raises(PermissionDeniedError, match="no jurisdiction"):
        authenticate(store, token)


def test_stored_unknown_role_is_refused(store):
    token = f"rl_{secrets.token_urlsafe(32)}"
    store.add_token("odd", "superuser", [], hashlib.sha256(token.encode()).hexdigest())
    with pytest.raises(PermissionDeniedError, match="unknown role"):
        authenticate(store, token)


def test_a_principal_cannot_be_an_inspector_of_nowhere():
    with pytest.raises(PermissionDeniedError, match="no jurisdiction"):
        Principal("i", "inspector", ())
    with pytest.raises(PermissionDeniedError, match="no jurisdiction"):
        Principal("i", "inspector")
    assert Principal("i", "inspector", (XIN,)).may_see({"id": 1, "admin_code": XIN})
    assert not Principal("i", "inspector", (XIN,)).may_see({"id": 1, "admin_code": None})
