"""Bearer tokens with roles and jurisdictions. Tokens are shown once, stored hashed.

Roles: viewer (read), inspector (read + workflow + evidence inside a jurisdiction),
analyst (read + exports + statistics), admin (everything, incl. starting scans).
A jurisdiction is a list of admin-unit codes; empty means everywhere (not allowed
for inspectors, who must be bound to units).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace

from .errors import AuthenticationError, InputError, PermissionDeniedError
from .store import FlagFilter, Store

ROLES = ("viewer", "inspector", "analyst", "admin")

# permission -> roles that have it
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "read": ROLES,
    "check": ROLES,
    "workflow": ("inspector", "admin"),
    "evidence": ("inspector", "admin"),
    "export": ("analyst", "admin"),
    "stats": ROLES,  # everyone; inspectors' counts are their jurisdiction's (Principal.scope)
    "scan": ("admin",),
    "close": ("admin",),  # approve a rectification's close-out (redline.ledger)
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    jurisdiction: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.restricted and not self.jurisdiction:  # an empty filter would mean "everywhere"
            raise PermissionDeniedError(f"inspector {self.name!r} has no jurisdiction")

    def require(self, permission: str) -> None:
        if self.role not in PERMISSIONS[permission]:
            raise PermissionDeniedError(f"role {self.role} may not {permission}")

    @property
    def restricted(self) -> bool:
        """Inspectors see and act only inside their jurisdiction."""
        return self.role == "inspector"

    def scope(self, flt: FlagFilter | None = None) -> FlagFilter:
        """``flt`` narrowed to what this principal may see: the one place jurisdiction is
        applied to flag listings (checks, items, exports, stats, tiles)."""
        flt = replace(flt) if flt is not None else FlagFilter()
        if self.restricted:
            if flt.admin_code:
                outside = [a for a in flt.admin_code if a not in self.jurisdiction]
                if outside:
                    raise PermissionDeniedError(f"admin unit(s) {', '.join(outside)} are outside your jurisdiction")
            else:
                flt.admin_code = list(self.jurisdiction)
        return flt

    def may_see(self, flag: dict) -> bool:
        return not self.restricted or flag.get("admin_code") in self.jurisdiction

    def require_flag(self, flag: dict) -> None:
        if not self.may_see(flag):
            raise PermissionDeniedError(f"flag {flag['id']} is outside your jurisdiction")


# Whoever runs the CLI on the server (or the nightly batch) sees everything.
OPERATOR = Principal("operator", "admin")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str, role: str, jurisdiction: list[str] | None = None) -> str:
    """Create a token and return it; only its hash is stored."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    jurisdiction = [j.strip() for j in jurisdiction or [] if j.strip()]
    if role == "inspector" and not jurisdiction:
        raise InputError("an inspector token needs a jurisdiction: one or more admin-unit codes (--admin CODE)")
    token = f"rl_{secrets.token_urlsafe(32)}"
    store.add_token(name, role, jurisdiction, _hash(token))
    return token


def authenticate(store: Store, token: str | None) -> Principal:
    if not token:
        raise AuthenticationError("missing bearer token")
    row = store.token_by_hash(_hash(token))
    if row is None:
        raise AuthenticationError("invalid or revoked token")
    role, jurisdiction = row["role"], tuple(j.strip() for j in row["jurisdiction"] or () if j and j.strip())
    # Rows written around create_token (by hand, an old version) must never widen access:
    # an unknown role or an inspector bound to no unit is refused, never shown everything.
    if role not in ROLES:
        raise PermissionDeniedError(f"token {row['name']!r} has an unknown role {role!r}")
    if role == "inspector" and not jurisdiction:
        raise PermissionDeniedError(f"inspector token {row['name']!r} has no jurisdiction; ask for a new token")
    return Principal(row["name"], role, jurisdiction)
