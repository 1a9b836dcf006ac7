"""Every router of the API, gathered here: adding one (e.g. /api/v1/kb) is one line."""

from __future__ import annotations

from fastapi import APIRouter

from server.deps import AUTH_RESPONSES
from server.routes import alerts, approvals, auth, chat, investigations, kb, ops

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX, responses={422: AUTH_RESPONSES[422]})
api_router.include_router(chat.router)
api_router.include_router(alerts.router)
api_router.include_router(investigations.router)
api_router.include_router(approvals.router)
api_router.include_router(auth.router)
api_router.include_router(kb.router)

ops_router = ops.router  # /healthz, /readyz, /metrics: outside the versioned API

__all__ = ["API_PREFIX", "api_router", "ops_router"]
