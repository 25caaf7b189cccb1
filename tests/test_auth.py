"""Roles, jurisdictions and tokens in the engine, and the jurisdiction filter of flag queries."""

from __future__ import annotations

import hashlib

import pytest
import shapely

from redline.auth import PERMISSIONS, ROLES, Principal, authenticate, create_token
from redline.errors import AuthenticationError, InputError, PermissionDeniedError
from redline.store import FlagFilter

from .rows import flag_row

XIN, YIHE = "150625100", "150625201"

# who may do what, written out by hand
MAY = {
    "viewer": {"read", "check", "stats"},
    "inspector": {"read", "check", "workflow", "evidence", "stats"},  # stats: of their jurisdiction
    "analyst": {"read", "check", "export", "stats"},
    "admin": {"read", "check", "workflow", "evidence", "export", "stats", "scan", "close"},
}


@pytest.mark.parametrize("role", ["viewer", "inspector", "analyst", "admin"])
def test_role_permissions(role):
    assert set(PERMISSIONS) == {"read", "check", "workflow", "evidence", "export", "stats", "scan", "close"}
    p = Principal("x", role, (XIN,))
    for permission in PERMISSIONS:
        if permission in MAY[role]:
            p.require(permission)
        else:
            with pytest.raises(PermissionDeniedError, match=f"role {role} may not {permission}"):
                p.require(permission)


@pytest.mark.parametrize(
    "role,restricted", [("viewer", False), ("inspector", True), ("analyst", False), ("admin", False)]
)
def test_only_inspectors_are_bound_to_their_jurisdiction(role, restricted):
    p = Principal("x", role, (XIN,))
    assert p.restricted is restricted
    assert p.may_see({"id": 1, "admin_code": XIN})
    assert p.may_see({"id": 2, "admin_code": YIHE}) is (not restricted)
    assert p.may_see({"id": 3, "admin_code": None}) is (not restricted)
    p.require_flag({"id": 1, "admin_code": XIN})
    if restricted:
        with pytest.raises(PermissionDeniedError, match="flag 2 is outside your jurisdiction"):
            p.require_flag({"id": 2, "admin_code": YIHE})
    else:
        p.require_flag({"id": 2, "admin_code": YIHE})


def test_inspector_with_an_empty_jurisdiction_is_refused():
    """An empty list of admin units would filter nothing, i.e. show everything: refused outright."""
    with pytest.raises(PermissionDeniedError, match="no jurisdiction"):
        Principal("i", "inspector", ())
    assert Principal("v", "viewer", ()).jurisdiction == ()  # unrestricted roles need none


def test_create_token_validates_role_and_jurisdiction(store):
    with pytest.raises(InputError, match="unknown role 'root'"):
        create_token(store, "x", "root")
    for empty in (None, [], ["", "  "]):
        with pytest.raises(InputError, match="inspector token needs a jurisdiction"):
            create_token(store, "i", "inspector", empty)
    assert store.tokens() == []
    token = create_token(store, "i", "inspector", [f" {XIN} ", "", YIHE])
    assert token.startswith("rl_") and len(token) == 3 + 43  # 32 random bytes, base64url
    assert authenticate(store, token) == Principal("i", "inspector", (XIN, YIHE))
    (row,) = store.tokens()
    assert token not in str(row)  # only the hash is stored
    assert store.token_by_hash(hashlib.sha256(token.encode()).hexdigest())["name"] == "i"
    assert create_token(store, "v", "viewer") != create_token(store, "v2", "viewer")


@pytest.mark.parametrize("role", ROLES)
def test_authenticate_each_role(store, role):
    jurisdiction = [XIN] if role == "inspector" else None
    token = create_token(store, role, role, jurisdiction)
    assert authenticate(store, token) == Principal(role, role, (XIN,) if role == "inspector" else ())


def test_missing_wrong_and_revoked_tokens_are_refused(store):
    with pytest.raises(AuthenticationError, match="missing bearer token"):
        authenticate(store, None)
    with pytest.raises(AuthenticationError, match="missing bearer token"):
        authenticate(store, "")
    with pytest.raises(AuthenticationError, match="invalid or revoked"):
        authenticate(store, "rl_not-a-token")
    keep = create_token(store, "keep", "analyst")
    gone = create_token(store, "gone", "admin")
    (row,) = [t for t in store.tokens() if t["name"] == "gone"]
    store.revoke_token(row["id"])
    with pytest.raises(AuthenticationError, match="invalid or revoked"):
        authenticate(store, gone)
    assert authenticate(store, keep).name == "keep"  # revoking one token leaves the others


# --- the jurisdiction filter of flag listings (Principal.scope) ---------------------------

FLAG = flag_row(admin_code=XIN)


@pytest.fixture
def two_townships(store):
    a = store.insert_flag(FLAG, shapely.box(108, 39, 108.01, 39.01))
    b = store.insert_flag({**FLAG, "admin_code": YIHE}, shapely.box(108.1, 39, 108.11, 39.01))
    c = store.insert_flag({**FLAG, "admin_code": None}, shapely.box(108.2, 39, 108.21, 39.01))
    return a, b, c


def ids(store, flt):
    return [f["id"] for f in store.flags(flt)]


def test_inspector_lists_only_own_jurisdiction(store, two_townships):
    a, b, c = two_townships
    inspector = Principal("i", "inspector", (XIN,))
    assert ids(store, inspector.scope()) == [a] and ids(store, inspector.scope(None)) == [a]
    assert store.count_flags(inspector.scope(FlagFilter())) == 1
    assert ids(store, inspector.scope(FlagFilter(admin_code=[XIN]))) == [a]
    with pytest.raises(PermissionDeniedError, match=f"{YIHE} are outside your jurisdiction"):
        inspector.scope(FlagFilter(admin_code=[XIN, YIHE]))
    both = Principal("j", "inspector", (XIN, YIHE))
    assert ids(store, both.scope(FlagFilter())) == [a, b]
    assert ids(store, both.scope(FlagFilter(admin_code=[YIHE]))) == [b]
    asked = FlagFilter(severity=["high"])
    scoped = inspector.scope(asked)
    assert (scoped.admin_code, scoped.severity) == ([XIN], ["high"]) and asked.admin_code is None  # not in place


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_other_roles_list_everything_and_filter_as_asked(store, two_townships, role):
    a, b, c = two_townships
    user = Principal("u", role)
    assert ids(store, user.scope(FlagFilter())) == [a, b, c]
    assert ids(store, user.scope(FlagFilter(admin_code=[YIHE]))) == [b]


@pytest.mark.parametrize(
    "role,jurisdiction,match",
    [
        ("inspector", [], "has no jurisdiction"),
        ("inspector", ["", " "], "has no jurisdiction"),
        ("superuser", [], "unknown role"),
    ],
)
def test_token_rows_written_by_hand_never_widen_access(store, role, jurisdiction, match):
    token = "rl_handmade"
    store.add_token("hand", role, jurisdiction, hashlib.sha256(token.encode()).hexdigest())
    with pytest.raises(PermissionDeniedError, match=match):
        authenticate(store, token)


def test_messages_say_what_is_wrong(store):
    with pytest.raises(InputError) as info:
        create_token(store, "x", "root")
    assert str(info.value) == "unknown role 'root'; expected one of viewer, inspector, analyst, admin"
    with pytest.raises(InputError) as info:
        create_token(store, "i", "inspector")
    assert str(info.value) == ("an inspector token needs a jurisdiction: one or more admin-unit codes (--admin CODE)")
    with pytest.raises(AuthenticationError) as info:
        authenticate(store, "")
    assert str(info.value) == "missing bearer token"
    with pytest.raises(AuthenticationError) as info:
        authenticate(store, "rl_nope")
    assert str(info.value) == "invalid or revoked token"
    store.add_token("hand", "inspector", [], hashlib.sha256(b"rl_hand").hexdigest())
    with pytest.raises(PermissionDeniedError) as info:
        authenticate(store, "rl_hand")
    assert str(info.value) == "inspector token 'hand' has no jurisdiction; ask for a new token"
    with pytest.raises(PermissionDeniedError) as info:
        Principal("i", "inspector", (XIN,)).scope(FlagFilter(admin_code=[YIHE, "150625999"]))
    assert str(info.value) == f"admin unit(s) {YIHE}, 150625999 are outside your jurisdiction"
