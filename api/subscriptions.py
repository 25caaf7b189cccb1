"""Area subscriptions and the delivery log (redline.notify): admins manage all of them; an
inspector subscribes only within the jurisdiction and sees only their own."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from redline import notify
from redline.regions import region_from_geojson

from .deps import CurrentUser, SettingsDep, StoreDep
from .inputs import region_limits

router = APIRouter(tags=["subscriptions"])


class SubscriptionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    admin_codes: list[str] = Field(
        default_factory=list, max_length=500, description="The area as admin-unit codes; or give `region`."
    )
    region: dict | None = Field(
        None,
        description="The area as a GeoJSON polygon (geometry, Feature or "
        "FeatureCollection; lon/lat unless it names a CRS).",
    )
    min_severity: str | None = None
    activities: list[str] = Field(default_factory=list, max_length=50)
    kinds: list[str] = Field(
        default_factory=lambda: list(notify.DEFAULT_KINDS),
        description="new (new flags), observed (new observations of open flags), overdue (daily: open"
        " rectification deadlines passed); new and observed by default",
    )
    webhook: str | None = Field(None, max_length=2000, description="http(s) URL the signed JSON body is POSTed to")
    secret: str | None = Field(
        None, max_length=500, description="HMAC-SHA256 secret (generated when not given, answered once)"
    )
    email: str | None = Field(None, max_length=320)


class Subscription(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    name: str
    owner_name: str
    owner_role: str
    admin_codes: list[str]
    region: dict | None
    min_severity: str | None
    activities: list[str]
    kinds: list[str]
    channel: str
    target: str
    has_secret: bool
    created_at: str


class Delivery(BaseModel):
    id: int
    subscription: str
    run_id: str
    key: str
    state: str
    attempts: int
    flags: int
    last_error: str | None
    payload_sha256: str
    created_at: str
    updated_at: str
    sent_at: str | None


@router.get("/subscriptions", response_model=list[Subscription], summary="List subscriptions")
def list_subscriptions(store: StoreDep, user: CurrentUser) -> Any:
    return [notify.public(s) for s in notify.visible_subscriptions(store, user)]


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=Subscription,
    summary="Subscribe an area",
    responses={409: {"description": "A subscription of that name exists"}},
)
def post_subscription(body: SubscriptionRequest, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> Any:
    notify.require_subscriber(user)
    region = region_from_geojson(body.region, limits=region_limits(settings)) if body.region is not None else None
    row = notify.new_subscription(
        user,
        body.name,
        admin_codes=body.admin_codes,
        region=region,
        min_severity=body.min_severity,
        activities=body.activities,
        kinds=body.kinds,
        webhook=body.webhook,
        secret=body.secret,
        email=body.email,
    )
    out = notify.public(store.add_subscription(row))
    if row["channel"] == "webhook" and not body.secret:
        out["secret"] = row["secret"]  # generated: answered this once
    return out


@router.delete("/subscriptions/{name}", status_code=204, summary="Remove a subscription")
def delete_subscription(name: str, store: StoreDep, user: CurrentUser) -> Response:
    notify.remove_subscription(store, user, name)
    return Response(status_code=204)


@router.get("/deliveries", response_model=list[Delivery], summary="The delivery log")
def list_deliveries(
    store: StoreDep,
    user: CurrentUser,
    run: str | None = Query(None, max_length=200, description="Only this nightly run's"),
) -> Any:
    subs = None if user.role == "admin" else [s["id"] for s in notify.visible_subscriptions(store, user)]
    return store.deliveries(run_id=run, subscription_ids=subs)
