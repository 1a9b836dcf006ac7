"""Sign-in: a one-time link (printed by `serve` at first start) becomes a browser session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import RedirectResponse

from server.api_models import Problem, WhoAmI
from server.auth import SESSION_COOKIE, SESSION_HOURS
from server.deps import AUTH_RESPONSES, Ctx, caller
from server.principals import Principal

router = APIRouter(tags=["auth"])


@router.get(
    "/auth/signin", response_class=RedirectResponse, status_code=303, responses={401: {"model": Problem}}
)
def signin(ctx: Ctx, token: Annotated[str, Query(min_length=8, max_length=200)]) -> RedirectResponse:
    """Exchange a one-time sign-in token for a session cookie, then go to the console."""
    session = ctx.auth.exchange_signin(token)
    if session is None:
        raise HTTPException(
            401, detail="this sign-in link is unknown, used or expired; ask an admin for a new one"
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, session, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict", path="/"
    )
    return response


@router.get("/auth/whoami", response_model=WhoAmI, responses=AUTH_RESPONSES)
def whoami(who: Annotated[Principal, Depends(caller)]) -> WhoAmI:
    """Who the token or session belongs to; `auth: none` when the server runs without authentication."""
    return WhoAmI(
        name=who.name, role=who.role, auth={"api": "token", "session": "session"}.get(who.via, "none")
    )
