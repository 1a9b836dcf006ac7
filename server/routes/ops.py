"""Operations: /healthz (process up), /readyz (store, queue and model reachable), /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api_models import Health
from server.deps import Ctx

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
def healthz(ctx: Ctx) -> Health:
    """The process is up (no dependency is checked)."""
    return Health(status="ok", authentication=not ctx.no_auth)


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "not ready"}})
def readyz(ctx: Ctx) -> Response | Health:
    """Ready to work: the store and the queue answer, and the model is reachable (or `none`)."""
    checks: dict[str, str] = {}
    for name, probe in (("store", ctx.store.ping), ("queue", ctx.queue.ping)):
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"failed: {type(exc).__name__}"
    model = ctx.service.model()
    checks["model"] = (
        "ok" if model.available or model.name == "none" else f"unavailable: {model.note or model.name}"
    )
    ok = all(v == "ok" for v in checks.values())
    health = Health(status="ok" if ok else "not ready", checks=checks, authentication=not ctx.no_auth)
    return health if ok else JSONResponse(health.model_dump(), status_code=503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: Ctx) -> Response:
    """Prometheus metrics: investigations, alerts, queue, tool latency, model tokens, approvals."""
    return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
