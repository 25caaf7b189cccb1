"""Dependencies: settings, a store per request, the calling principal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from redline.auth import Principal, authenticate
from redline.config import Settings
from redline.store import Store, open_store


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_store(settings: SettingsDep) -> Iterator[Store]:
    store = open_store(settings.database_url)
    try:
        yield store
    finally:
        store.close()


StoreDep = Annotated[Store, Depends(get_store)]

_bearer = HTTPBearer(auto_error=False, description="Token from `redline tokens create`.")


def current_user(
    store: StoreDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    return authenticate(store, credentials.credentials if credentials else None)


CurrentUser = Annotated[Principal, Depends(current_user)]


def requires(permission: str):
    """A dependency that admits only principals holding ``permission``."""

    def _check(user: CurrentUser) -> Principal:
        user.require(permission)
        return user

    return Depends(_check)
