"""Green Shield workflow, history and field evidence."""

from __future__ import annotations

import pytest

from .conftest import assert_problem

JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 200 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100


def _flag_id(client, auth, activity):
    items = client.get(f"/collections/flags/items?activity={activity}", headers=auth("admin")).json()
    return items["features"][0]["id"]


def test_full_workflow_with_history(client, auth):
    h = auth("inspector")
    fid = _flag_id(client, auth, "mining")
    steps = ["dispatched", "verified_violation", "rectifying", "rectified", "closed"]
    for i, status in enumerate(steps):
        if status == "closed":  # close-out (redline.ledger): evidence, an approver, recovery or override
            assert_problem(
                client.patch(f"/flags/{fid}", json={"status": status}, headers=h),
                409,
                "no completion evidence",
                "role inspector may not approve",
            )
            r = client.post(f"/flags/{fid}/evidence", headers=h, files={"file": ("done.jpg", JPEG)})
            assert r.status_code == 201
            h = auth("admin")
        r = client.patch(
            f"/flags/{fid}",
            json={"status": status, "note": f"step {i}", "override_reason": "visited"}
            if status == "closed"
            else {"status": status, "note": f"step {i}"},
            headers=h,
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == status
    hist = client.get(f"/flags/{fid}/history", headers=h).json()
    moves = [e for e in hist if e["action"] == "status"]
    assert [m["detail"]["to"] for m in moves] == steps
    assert all(m["actor"] == "i" and m["at"] for m in moves[:-1]) and moves[0]["detail"]["note"] == "step 0"
    assert moves[-1]["actor"] == "root" and moves[-1]["detail"]["approved_by"] == "root"
    assert client.get(f"/flags/{fid}", headers=h).json()["allowed_next"] == []


def test_illegal_transition_is_409_and_names_allowed(client, auth):
    fid = _flag_id(client, auth, "transport")
    body = assert_problem(
        client.patch(f"/flags/{fid}", json={"status": "closed"}, headers=auth("inspector")),
        409,
        "cannot move from new to closed",
    )
    assert body["allowed"] == ["dispatched"]
    assert_problem(client.patch(f"/flags/{fid}", json={"status": "nonsense"}, headers=auth("inspector")), 422)
    assert_problem(client.patch("/flags/424242", json={"status": "dispatched"}, headers=auth("admin")), 404)


def test_evidence_upload_list_download(client, auth, env):
    h = auth("inspector")
    fid = _flag_id(client, auth, "industrial")
    r = client.post(
        f"/flags/{fid}/evidence",
        headers=h,
        files={"file": ("../../etc/passwd.jpg", JPEG, "image/jpeg")},
        data={"lon": "108.70", "lat": "39.88", "note": "excavator on site"},
    )
    assert r.status_code == 201, r.text
    ev = r.json()
    assert ev["content_type"] == "image/jpeg" and ev["size"] == len(JPEG) and ev["lon"] == 108.70
    stored = list((env["settings"].evidence_dir / str(fid)).iterdir())
    assert [p.suffix for p in stored] == [".jpg"] and "passwd" not in stored[0].name  # name is ours
    assert client.post(f"/flags/{fid}/evidence", headers=h, files={"file": ("p.png", PNG)}).status_code == 201
    listed = client.get(f"/flags/{fid}/evidence", headers=h).json()
    assert [e["content_type"] for e in listed] == ["image/jpeg", "image/png"]
    got = client.get(f"/evidence/{ev['id']}", headers=h)
    assert got.status_code == 200 and got.content == JPEG
    assert any(e["action"] == "evidence" for e in client.get(f"/flags/{fid}/history", headers=h).json())


@pytest.mark.parametrize(
    "name,data,status,fragment",
    [
        ("x.jpg", b"#!/bin/sh\nrm -rf /", 422, "JPEG or PNG"),
        ("x.html", b"<html><script>", 422, "unsupported file type"),
        ("big.jpg", JPEG[:4] + b"\x00" * 2_000_000, 413, "exceeds"),
    ],
)
def test_evidence_refused(client, auth, name, data, status, fragment, env):
    fid = _flag_id(client, auth, "farmland")
    root = env["settings"].evidence_dir
    before = sorted(p for p in root.rglob("*") if p.is_file())
    r = client.post(f"/flags/{fid}/evidence", headers=auth("admin"), files={"file": (name, data)})
    assert_problem(r, status, fragment)
    assert sorted(p for p in root.rglob("*") if p.is_file()) == before  # nothing left behind


def test_evidence_gps_must_be_lon_lat(client, auth):
    fid = _flag_id(client, auth, "farmland")
    r = client.post(
        f"/flags/{fid}/evidence",
        headers=auth("admin"),
        files={"file": ("a.jpg", JPEG)},
        data={"lon": "500000", "lat": "4400000"},
    )
    assert_problem(r, 422)
    r = client.post(
        f"/flags/{fid}/evidence", headers=auth("admin"), files={"file": ("a.jpg", JPEG)}, data={"lon": "108.7"}
    )
    assert_problem(r, 422, "both lon and lat")
    assert_problem(client.post(f"/flags/{fid}/evidence", headers=auth("viewer"), files={"file": ("a.jpg", JPEG)}), 403)
