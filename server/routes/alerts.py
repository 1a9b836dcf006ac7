"""`POST /alerts/{source}`: Alertmanager, Grafana, Elastic Watcher and generic webhooks; `GET /alerts`.

The webhook is the service's hot path (thousands of posts a second), so it is a plain Starlette
endpoint mounted in the same app rather than a FastAPI route: no dependency solving, no thread
hop, the body read once and parsed once (orjson, in the writer), the answer serialised once. Its
OpenAPI operation is written out explicitly (`document`), with the same schemas as before.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from graphs.alerts import ALERT_SOURCES, AlertError
from server.api_models import AlertView, Problem
from server.deps import AUTH_RESPONSES, AppContext, Ctx, Viewer, caller
from server.intake import IntakeResult
from server.principals import Principal
from server.text import cut_quoted, untrusted

router = APIRouter(tags=["alerts"])

WEBHOOK_PATH = "/alerts/{source}"
_SOURCE_PROBLEM = "path.source: Input should be " + ", ".join(f"'{s}'" for s in ALERT_SOURCES[:-1])
_SOURCE_PROBLEM += f" or '{ALERT_SOURCES[-1]}'"


async def read_capped(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it passes `limit` bytes (declared or actually sent).

    Reads the ASGI messages itself: `request.stream()` is an async generator, and registering one
    with the event loop per request cost more than the rest of reading the body."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, detail=f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, detail=f"the body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json(doc: Any, status: int) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


async def post_alert(request: Request) -> Response:
    """Store the body durably, deduplicate each alert by its source fingerprint, and start one
    investigation per distinct entity; resolved alerts close theirs. Answers 202 once stored."""
    ctx: AppContext = request.app.state.ctx
    source = request.path_params["source"]
    if source not in ALERT_SOURCES:
        return _json({"detail": "the request is malformed", "problems": [_SOURCE_PROBLEM]}, 422)
    body = await read_capped(request, ctx.settings.service.max_body_bytes)
    who = _webhook_caller(source, request, ctx, body)
    result = await ctx.ingest.submit((source, body, who.name))  # group commit with concurrent posts
    metrics = ctx.metrics
    if isinstance(result, AlertError):
        metrics.alerts_rejected.labels(source, "malformed").inc()
        return _json({"detail": str(result), "problems": result.problems or [str(result)]}, 422)
    metrics.alerts_received.labels(source).inc(len(result.alerts))
    dups = result.deduplicated
    if dups:
        metrics.alerts_deduplicated.labels(source).inc(dups)
    return Response(result.json(), status_code=202, media_type="application/json")


def _webhook_caller(source: str, request: Request, ctx: AppContext, body: bytes) -> Principal:
    """A source with a webhook secret must prove it; otherwise an operator token is needed."""
    if ctx.auth.webhook_configured(source):
        if ctx.auth.webhook_ok(source, request.headers, body):
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


def document(openapi: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Add the webhook's operation (and the schemas it names) to the app's OpenAPI document."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for model in (IntakeResult, Problem):
        doc = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
        schemas.update(doc.pop("$defs", {}))
        schemas.setdefault(model.__name__, doc)

    def problem(description: str) -> dict[str, Any]:
        schema = {"$ref": "#/components/schemas/Problem"}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    source = {"enum": list(ALERT_SOURCES), "type": "string", "title": "Source",
              "description": "which system sends this webhook"}  # fmt: skip
    intake = {"$ref": "#/components/schemas/IntakeResult"}
    openapi.setdefault("paths", {})[prefix + WEBHOOK_PATH] = {
        "post": {
            "tags": ["alerts"],
            "summary": "Post Alert",
            "description": inspect.cleandoc(post_alert.__doc__ or ""),
            "operationId": "post_alert_api_v1_alerts__source__post",
            "parameters": [
                {
                    "name": "source",
                    "in": "path",
                    "required": True,
                    "schema": source,
                    "description": "which system sends this webhook",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
            },
            "responses": {
                "202": {
                    "description": "Stored: each alert's outcome and the investigations started",
                    "content": {"application/json": {"schema": intake}},
                },
                "401": problem("no token, or a wrong webhook secret"),
                "403": problem("the token's role may not post alerts (operator needed)"),
                "413": problem("body over service.max_body_bytes (1 MiB)"),
                "422": problem("malformed body: each missing or bad field by path"),
            },
        }
    }
    return openapi


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
