"""`POST /alerts/{source}`: Alertmanager, Grafana, Elastic Watcher and generic webhooks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from graphs.alerts import AlertError, AlertSource
from server.api_models import AlertView, Problem
from server.deps import AUTH_RESPONSES, Ctx, Viewer, caller
from server.intake import IntakeResult
from server.principals import Principal
from server.text import cut_quoted, untrusted

router = APIRouter(tags=["alerts"])


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it passes `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/alerts/{source}",
    status_code=202,
    response_model=IntakeResult,
    responses={
        401: {"model": Problem, "description": "no token, or a wrong webhook secret"},
        403: {"model": Problem},
        413: {"model": Problem, "description": "body over service.max_body_bytes (1 MiB)"},
        422: {"model": Problem, "description": "malformed body: each missing or bad field by path"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        }
    },
)
async def post_alert(
    source: Annotated[AlertSource, Path(description="which system sends this webhook")],
    request: Request,
    ctx: Ctx,
) -> Response:
    """Store the body durably, deduplicate each alert by its source fingerprint, and start one
    investigation per distinct entity; resolved alerts close theirs. Answers 202 once stored."""
    body = await read_capped(request, ctx.settings.service.max_body_bytes)
    who = _webhook_caller(source, request, ctx, body)
    result = await ctx.ingest.submit((source, body, who.name))  # group commit with concurrent posts
    if isinstance(result, AlertError):
        ctx.metrics.alerts_rejected.labels(source, "malformed").inc()
        problems = result.problems or [str(result)]
        return JSONResponse(Problem(detail=str(result), problems=problems).model_dump(), status_code=422)
    ctx.metrics.alerts_received.labels(source).inc(len(result.alerts))
    dups = sum(a.deduplicated and a.status == "firing" for a in result.alerts)
    if dups:
        ctx.metrics.alerts_deduplicated.labels(source).inc(dups)
    # already a validated IntakeResult: serialised once, not validated again on the way out
    return Response(result.model_dump_json(), status_code=202, media_type="application/json")


def _webhook_caller(source: str, request: Request, ctx: Ctx, body: bytes) -> Principal:
    """A source with a webhook secret must prove it; otherwise an operator token is needed."""
    if ctx.auth.webhook_configured(source):
        headers = {k.lower(): v for k, v in request.headers.items()}
        if ctx.auth.webhook_ok(source, headers, body):
            return Principal(name=f"webhook:{source}", role="operator", via="webhook")
        ctx.metrics.alerts_rejected.labels(source, "bad_secret").inc()
        raise HTTPException(401, detail=f"wrong or missing webhook secret for {source}")
    try:
        who = caller(request, ctx)
    except HTTPException:
        ctx.metrics.alerts_rejected.labels(source, "unauthenticated").inc()
        raise
    if not who.can("operator"):
        ctx.metrics.alerts_rejected.labels(source, "forbidden").inc()
        raise HTTPException(403, detail=f"{who.name} has role {who.role}; posting alerts needs operator")
    return who


@router.get("/alerts", response_model=list[AlertView], responses=AUTH_RESPONSES)
def list_alerts(
    ctx: Ctx,
    _who: Viewer,
    status: Literal["firing", "resolved"] | None = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[AlertView]:
    """Received alerts, most recently seen first: source, severity, count, first and last seen,
    status, and the headline of the investigation each started or joined."""
    return [
        AlertView(
            id=r["id"],
            source=r["source"],
            fingerprint=untrusted(r["fingerprint"], 120),
            name=untrusted(r["name"], 200),
            entity=untrusted(r["entity"], 120) if r["entity"] else None,
            severity=r["severity"],
            status=r["status"],
            count=r["count"],
            first_seen=r["first_seen"],
            last_seen=r["last_seen"],
            resolved_at=r["resolved_at"],
            summary=untrusted(r["summary"] or "", 300),
            investigation_id=r["investigation_id"],
            investigation_status=r["investigation_status"],
            headline=cut_quoted(r["investigation_headline"] or "", 300),
        )
        for r in ctx.store.list_alerts(status, limit, offset)
    ]
