"""``/v1/session``: trade the API key for the studio's session cookie, check it, end it
(``kapsule.api.sessions``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from kapsule.api import sessions
from kapsule.api.deps import (
    SecretDep,
    SettingsDep,
    StatusDep,
    check_same_origin,
    current_owner,
    owner_of_key,
)
from kapsule.api.schemas import ApiModel
from kapsule.core.access import LOCAL_OWNER, parse_api_keys

router = APIRouter(prefix="/session", tags=["session"])


class KeyExchange(ApiModel):
    key: str = Field(..., min_length=1, max_length=500, description="Your API key (sent once, never stored).")


class SessionOut(BaseModel):
    owner: str
    expires_at: datetime | None = Field(None, description="None in open mode (no keys, no session).")


@router.post("", response_model=SessionOut)
def start_session(
    body: KeyExchange, request: Request, response: Response, settings: SettingsDep, secret: SecretDep
) -> SessionOut:
    """Check the key and set an HttpOnly, SameSite=Strict session cookie (the page keeps no key)."""
    keys = parse_api_keys(settings.api_keys)
    if not keys:
        return SessionOut(owner=LOCAL_OWNER)
    check_same_origin(request, settings)
    owner = owner_of_key(request, keys, body.key.strip())
    token, session = sessions.issue(secret, owner, keys[owner], settings.session_ttl_s)
    response.set_cookie(
        sessions.COOKIE,
        token,
        max_age=settings.session_ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(owner=owner, expires_at=datetime.fromtimestamp(session.expires, UTC))


@router.get("", response_model=SessionOut)
def get_session(
    owner: Annotated[str, Depends(current_owner)], request: Request, settings: SettingsDep, secret: SecretDep
) -> SessionOut:
    """Who the caller is (a 401 when the session has ended): the page asks this on load."""
    cookie = request.cookies.get(sessions.COOKIE)
    keys = parse_api_keys(settings.api_keys)
    session = sessions.verify(secret, cookie, keys, settings.session_ttl_s) if cookie and keys else None
    expires = datetime.fromtimestamp(session.expires, UTC) if session else None
    return SessionOut(owner=owner, expires_at=expires)


@router.delete("", status_code=204)
def end_session(request: Request, settings: SettingsDep, secret: SecretDep, status: StatusDep) -> Response:
    """Sign out: the session is revoked in the status store (so on every replica) and the cookie removed."""
    cookie = request.cookies.get(sessions.COOKIE)
    keys = parse_api_keys(settings.api_keys)
    if cookie and keys:
        session = sessions.verify(secret, cookie, keys, settings.session_ttl_s)
        if session is not None:
            status.revoke_session(session.session_id, session.expires)
    response = Response(status_code=204)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return response
