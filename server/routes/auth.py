"""Sign-in: a one-time link (printed by `serve` at first start) becomes a browser session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from server.api_models import Problem, ServerInfo, WhoAmI
from server.auth import SESSION_COOKIE, SESSION_HOURS, bearer
from server.deps import AUTH_RESPONSES, Ctx, Viewer, caller
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
    _set_session(response, session)
    return response


def _set_session(response: Response, session: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, session, max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict", path="/"
    )


@router.post("/auth/session", response_model=WhoAmI, responses={401: {"model": Problem}})
def start_session(request: Request, ctx: Ctx) -> JSONResponse:
    """Exchange an API token (`Authorization: Bearer`, from `opscopilot tokens create`) for a browser
    session cookie (HttpOnly, SameSite=Strict): how the console signs in with a token."""
    who = ctx.auth.verify(bearer(request.headers.get("authorization")), kinds=("api",))
    if who is None:
        raise HTTPException(
            401,
            detail="unknown or revoked API token: create one with `opscopilot tokens create --name NAME "
            "--role ROLE`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    response = JSONResponse(WhoAmI(name=who.name, role=who.role, auth="session").model_dump())
    _set_session(response, ctx.auth.session_for(who))
    return response


@router.post("/auth/signout", status_code=204, response_class=Response)
def signout(request: Request, ctx: Ctx) -> Response:
    """End this browser session (its cookie stops working at once)."""
    ctx.auth.end_session(request.cookies.get(SESSION_COOKIE))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/auth/whoami", response_model=WhoAmI, responses=AUTH_RESPONSES)
def whoami(who: Annotated[Principal, Depends(caller)]) -> WhoAmI:
    """Who the token or session belongs to; `auth: none` when the server runs without authentication."""
    return WhoAmI(
        name=who.name, role=who.role, auth={"api": "token", "session": "session"}.get(who.via, "none")
    )


@router.get("/info", response_model=ServerInfo, responses=AUTH_RESPONSES)
def info(request: Request, ctx: Ctx, _who: Viewer) -> ServerInfo:
    """What this server investigates (a replayed scenario or the live estate) and how it runs."""
    scope = ctx.extras.get("scope")
    if scope is None:
        scope = ctx.extras["scope"] = _scope(ctx.source_ref)
    return ServerInfo(
        version=request.app.version,
        authentication=not ctx.no_auth,
        model=ctx.service.model_override or ctx.settings.resolved_model_spec,
        **scope,
    )


def _scope(source_ref: str) -> dict[str, str]:
    if not source_ref.startswith("scenario-file:"):
        return {"scope": "live", "scenario": "", "title": "the live estate of the settings"}
    from pathlib import Path

    from evals.loader import load_scenario

    path = Path(source_ref.removeprefix("scenario-file:"))
    return {"scope": "replay", "scenario": path.stem, "title": load_scenario(path).title}
