"""Route dependencies in one place: the app context, who is calling, and the role they need."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from server.auth import SESSION_COOKIE, Auth, bearer
from server.intake import Intake
from server.investigations import Investigations
from server.observability import Metrics
from server.principals import Principal, Role
from server.queue import WorkQueue
from server.settings import Settings
from server.store import Store


@dataclass
class AppContext:
    """Everything a route may use; built once per app."""

    settings: Settings
    store: Store
    service: Investigations
    queue: WorkQueue
    intake: Intake
    auth: Auth
    metrics: Metrics
    source_ref: str
    no_auth: bool = False
    clock: datetime | None = None  # a replayed scenario's "now"; None = wall clock
    ingest: Any = None  # GroupCommit over intake.accept_many (started with the app)
    extras: dict[str, Any] = field(default_factory=dict)


def get_ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]


def caller(request: Request, ctx: Ctx) -> Principal:
    """The bearer token's owner, else the browser session's; 401 when neither (unless --no-auth)."""
    token = bearer(request.headers.get("authorization"))
    who = ctx.auth.verify(token) if token else ctx.auth.verify(request.cookies.get(SESSION_COOKIE))
    if who is not None:
        return who
    if ctx.no_auth:
        return Principal(name="local", role="admin", via="none")
    raise HTTPException(
        status_code=401,
        detail="authentication required: send Authorization: Bearer <token> (opscopilot tokens create)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require(role: Role) -> Any:
    def check(who: Annotated[Principal, Depends(caller)]) -> Principal:
        if not who.can(role):
            raise HTTPException(status_code=403, detail=f"{who.name} has role {who.role}; this needs {role}")
        return who

    return check


Viewer = Annotated[Principal, Depends(require("viewer"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Approver = Annotated[Principal, Depends(require("approver"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def _problem(description: str) -> dict[str, Any]:
    from server.api_models import Problem

    return {"model": Problem, "description": description}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("no valid token or session"),
    403: _problem("the token's role may not do this"),
    422: _problem("a malformed request: each problem by field path"),
}
