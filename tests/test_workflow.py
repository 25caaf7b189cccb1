"""Every workflow transition, legal and illegal, through the engine and the API.

The expected table is written here by hand from the Green Shield procedure, not read from
``redline.workflow.TRANSITIONS``: a change to the table in the code must fail here.
"""

from __future__ import annotations

import itertools

import pytest
import shapely

from redline.auth import Principal
from redline.errors import ConflictError, InputError, NotFoundError, PermissionDeniedError
from redline.model import FlagDetail
from redline.vocab import FLAG_STATUSES
from redline.workflow import TransitionError, allowed_next, flag_detail, move

from .rows import flag_row

LEGAL = {
    ("new", "dispatched"),
    ("dispatched", "verified_violation"),
    ("dispatched", "false_positive"),
    ("dispatched", "permitted"),
    ("verified_violation", "rectifying"),
    ("false_positive", "closed"),
    ("permitted", "closed"),
    ("rectifying", "rectified"),
    ("rectified", "closed"),
    ("rectified", "rectifying"),  # the site was not rectified after all
}
STATUSES = (
    "new",
    "dispatched",
    "verified_violation",
    "false_positive",
    "permitted",
    "rectifying",
    "rectified",
    "closed",
)
PAIRS = list(itertools.product(STATUSES, STATUSES))

FLAG = flag_row(admin_code="150625100")


def ready_to_close(store, fid: int) -> None:
    """Completion evidence for a close-out (redline.ledger); the close needs an approver too."""
    store.add_evidence(
        {
            "flag_id": fid,
            "stored_name": "0" * 32 + ".jpg",
            "original_name": None,
            "content_type": "image/jpeg",
            "size": 1,
            "sha256": "x",
            "lon": None,
            "lat": None,
            "note": None,
            "actor": "insp",
            "at": "2026-09-01T00:00:00+00:00",
        }
    )


CLOSER = Principal("insp", "admin")  # a role that may approve a close-out
CLOSING = ("rectified", "closed")


def flag_in(store, status: str) -> int:
    fid = store.insert_flag({**FLAG, "status": status}, shapely.box(108, 39, 108.01, 39.01))
    assert store.flag(fid)["status"] == status
    return fid


def test_the_statuses_are_the_procedure_s():
    assert tuple(FLAG_STATUSES) == STATUSES


@pytest.mark.parametrize("status", STATUSES)
def test_allowed_next_lists_exactly_the_legal_moves(status):
    assert set(allowed_next(status)) == {to for frm, to in LEGAL if frm == status}


def test_verified_violation_cannot_be_closed_without_rectification():
    assert ("verified_violation", "closed") not in LEGAL
    assert "closed" not in allowed_next("verified_violation")
    assert allowed_next("closed") == ()


@pytest.mark.parametrize("frm", STATUSES)
def test_every_move_from_a_status_through_the_engine(store, frm):
    """From ``frm`` to every status: a legal move changes the status and is audited; an
    illegal one raises a TransitionError naming the legal moves and changes nothing."""
    for to in STATUSES:
        fid = flag_in(store, frm)
        if (frm, to) in LEGAL:
            close = {}
            if (frm, to) == CLOSING:  # close-out: evidence, approval, recovery or an override
                ready_to_close(store, fid)
                close = {"principal": CLOSER, "override_reason": "no history: flag made in this state"}
            out = move(store, fid, to, "insp", note=f"{frm}->{to}", **close)
            assert out["status"] == to and store.flag(fid)["status"] == to, (frm, to)
            assert "geometry" not in out
            (entry,) = [h for h in store.history(fid) if h["action"] == "status"]
            assert entry["actor"] == "insp"
            extra = {"approved_by": "insp", "override_reason": close["override_reason"]} if close else {}
            assert entry["detail"] == {"from": frm, "to": to, "note": f"{frm}->{to}", **extra}
        else:
            with pytest.raises(TransitionError) as info:
                move(store, fid, to, "insp")
            assert isinstance(info.value, ConflictError)
            assert f"cannot move from {frm} to {to}" in str(info.value), (frm, to)
            assert set(info.value.allowed) == {t for f, t in LEGAL if f == frm}
            if frm == "closed":
                assert "none (final state)" in str(info.value)
            assert store.flag(fid)["status"] == frm and store.history(fid) == [], (frm, to)


def test_the_whole_procedure_ends_closed(store):
    fid = flag_in(store, "new")
    path = ["dispatched", "verified_violation", "rectifying", "rectified", "rectifying", "rectified", "closed"]
    for to in path:
        if to == "closed":
            ready_to_close(store, fid)
            store.audit(fid, "scan", "recovery", {"verdict": "recovered"})  # new imagery: the site recovered
        move(store, fid, to, "insp", principal=CLOSER)
    assert [h["detail"]["to"] for h in store.history(fid) if h["action"] == "status"] == path


def test_unknown_status_and_missing_flag(store):
    fid = flag_in(store, "new")
    with pytest.raises(InputError, match="unknown status 'done'"):
        move(store, fid, "done", "insp")
    assert store.flag(fid)["status"] == "new"
    with pytest.raises(NotFoundError):
        move(store, fid + 1000, "dispatched", "insp")


def test_flag_detail_is_the_flag_detail_record(store):
    fid = flag_in(store, "new")
    detail = flag_detail(store, fid, CLOSER)
    assert isinstance(detail, FlagDetail)
    assert (detail.id, detail.status, detail.allowed_next, detail.conflicts) == (fid, "new", ["dispatched"], [])
    assert detail.model_extra == {}  # off the ledger, no history asked for
    for to in ("dispatched", "verified_violation"):
        move(store, fid, to, "insp", ledger={"deadline": "2026-08-31"} if to == "verified_violation" else None)
    detail = flag_detail(store, fid, CLOSER, history=True)
    assert detail.allowed_next == ["rectifying"]
    assert detail.model_extra is not None and detail.model_extra["ledger"]["deadline"] == "2026-08-31"
    assert [h["detail"]["to"] for h in detail.model_extra["history"]] == ["dispatched", "verified_violation"]
    with pytest.raises(PermissionDeniedError):
        flag_detail(store, fid, Principal("j", "inspector", ("150625201",)))


# --- the same table through the API (PATCH /flags/{id}) ---------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from redline.auth import create_token
    from redline.config import Settings
    from redline.store import open_store

    out = tmp_path_factory.mktemp("wf")
    url = f"sqlite:///{out / 'wf.db'}"
    store = open_store(url)
    token = create_token(store, "insp", "inspector", ["150625100"])
    admin = create_token(store, "chief", "admin")
    settings = Settings(database_url=url, data_dir=out, evidence_dir=out / "evidence")
    with TestClient(create_app(settings)) as client:
        yield {
            "client": client,
            "store": store,
            "headers": {"Authorization": f"Bearer {token}"},
            "admin": {"Authorization": f"Bearer {admin}"},
        }
    store.close()


@pytest.mark.parametrize("frm,to", PAIRS, ids=[f"{f}->{t}" for f, t in PAIRS])
def test_every_move_through_the_api(api, frm, to):
    store, client = api["store"], api["client"]
    fid = flag_in(store, frm)
    body, headers = {"status": to, "note": "field visit"}, api["headers"]
    if (frm, to) == CLOSING:  # close-out: evidence, an approver, recovery or an override
        ready_to_close(store, fid)
        body, headers = {**body, "override_reason": "site visit"}, api["admin"]
    r = client.patch(f"/flags/{fid}", json=body, headers=headers)
    if (frm, to) in LEGAL:
        assert r.status_code == 200, r.text
        assert r.json()["status"] == to
        assert set(r.json()["allowed_next"]) == {t for f, t in LEGAL if f == to}
        assert store.flag(fid)["status"] == to
    else:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert f"cannot move from {frm} to {to}" in r.json()["detail"]
        assert store.flag(fid)["status"] == frm


def test_error_messages_name_the_move_and_the_way_out(store):
    fid = flag_in(store, "dispatched")
    with pytest.raises(TransitionError) as info:
        move(store, fid, "closed", "insp")
    assert str(info.value) == (
        f"flag {fid} cannot move from dispatched to closed; allowed: verified_violation, false_positive, permitted"
    )
    fid = flag_in(store, "closed")
    with pytest.raises(TransitionError) as info:
        move(store, fid, "new", "insp")
    assert str(info.value) == f"flag {fid} cannot move from closed to new; allowed: none (final state)"
    with pytest.raises(InputError) as info:
        move(store, fid, "done", "insp")
    assert str(info.value) == (
        "unknown status 'done'; expected one of new, dispatched, verified_violation, "
        "false_positive, permitted, rectifying, rectified, closed"
    )


def test_an_unknown_current_status_allows_nothing():
    assert allowed_next("archived") == () and allowed_next("") == ()
