"""Access: tokens, roles, jurisdictions."""

from __future__ import annotations

import pytest

from .conftest import YIHE, assert_problem


def test_health_and_ready_are_public(client):
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/ready").json()["status"] == "ready"


@pytest.mark.parametrize("path", ["/collections", "/collections/flags/items", "/flags/1", "/stats", "/exports"])
def test_no_token_is_401(client, path):
    r = client.get(path)
    assert_problem(r, 401, "missing bearer token")
    assert r.headers["www-authenticate"] == "Bearer"


def test_bad_token_is_401(client):
    assert_problem(client.get("/collections", headers={"Authorization": "Bearer rl_nope"}), 401, "invalid")


@pytest.mark.parametrize(
    "role,path,status",
    [
        ("viewer", "/exports", 403),
        ("inspector", "/exports", 403),
        ("analyst", "/exports", 200),
        ("inspector", "/stats", 200),  # of their jurisdiction only (tests/security/test_access.py)
        ("viewer", "/stats", 200),
    ],
)
def test_roles(client, auth, role, path, status):
    assert client.get(path, headers=auth(role)).status_code == status


def test_viewer_and_analyst_cannot_move_flags(client, auth):
    for role in ("viewer", "analyst"):
        assert_problem(client.patch("/flags/2", json={"status": "dispatched"}, headers=auth(role)), 403, role)


def test_inspector_sees_only_their_jurisdiction(client, auth):
    mine = client.get("/collections/flags/items", headers=auth("inspector_yihe")).json()
    assert mine["numberMatched"] == 1
    assert {f["properties"]["admin_code"] for f in mine["features"]} == {YIHE}
    other_id = next(
        f["id"]
        for f in client.get("/collections/flags/items", headers=auth("admin")).json()["features"]
        if f["properties"]["admin_code"] != YIHE
    )
    assert_problem(client.get(f"/flags/{other_id}", headers=auth("inspector_yihe")), 403, "jurisdiction")
    assert_problem(
        client.patch(f"/flags/{other_id}", json={"status": "dispatched"}, headers=auth("inspector_yihe")),
        403,
        "jurisdiction",
    )
    assert_problem(client.get(f"/collections/flags/items/{other_id}", headers=auth("inspector_yihe")), 403)


def test_inspector_asking_for_another_unit_is_403(client, auth):
    from .conftest import XIN

    assert_problem(
        client.get(f"/collections/flags/items?admin={XIN}", headers=auth("inspector_yihe")),
        403,
        "outside your jurisdiction",
    )
    ok = client.get(f"/collections/flags/items?admin={YIHE}", headers=auth("inspector_yihe"))
    assert ok.json()["numberMatched"] == 1
