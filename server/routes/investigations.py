"""Investigations (list, get, ask, stream progress) and chat threads (list, reopen)."""

from __future__ import annotations

import asyncio
import json
import queue as queue_mod
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from server.api_models import (
    InvestigationDetail,
    InvestigationSummary,
    NewQuestion,
    Problem,
    Queued,
    ThreadDetail,
    ThreadView,
)
from server.deps import AUTH_RESPONSES, Ctx, Operator, Viewer
from server.investigations import NewInvestigation
from server.views import investigation_view

router = APIRouter(tags=["investigations"], responses=AUTH_RESPONSES)
FINAL = ("awaiting_approval", "approved", "rejected", "done", "failed", "abandoned", "expired", "superseded")


@router.get("/investigations", response_model=list[InvestigationSummary])
def list_investigations(
    ctx: Ctx,
    _who: Viewer,
    status: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> list[dict[str, Any]]:
    """Newest first."""
    return ctx.service.list(status, limit, offset)


@router.post("/investigations", status_code=202, response_model=Queued)
def ask(body: NewQuestion, ctx: Ctx, who: Operator) -> Queued:
    """Queue a question for the workers (for a streamed answer use POST /chat)."""
    if not body.question.strip():
        raise HTTPException(422, detail="the question is empty")
    new = NewInvestigation(
        question=body.question, requester=who.name, source_ref=ctx.source_ref, now=ctx.clock
    )
    inv_id = ctx.service.create(new)
    ctx.queue.put(inv_id)
    return Queued(investigation_id=inv_id, status="queued")


@router.get(
    "/investigations/{inv_id}", response_model=InvestigationDetail, responses={404: {"model": Problem}}
)
def get_investigation(inv_id: str, ctx: Ctx, _who: Viewer) -> dict[str, Any]:
    """Status, headline, findings, evidence, route, proposals, timings, model, tokens, prompt hashes."""
    found = ctx.service.get(inv_id)
    if found is None:
        raise HTTPException(404, detail=f"no investigation {inv_id}")
    return found


@router.get(
    "/investigations/{inv_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"model": Problem}},
)
async def follow(inv_id: str, ctx: Ctx, _who: Viewer) -> StreamingResponse:
    """Server-sent events of a running investigation (its progress events), ending with its status."""
    if ctx.store.get_investigation(inv_id) is None:
        raise HTTPException(404, detail=f"no investigation {inv_id}")
    feed = ctx.service.follow(inv_id)

    async def gen() -> AsyncIterator[str]:
        try:
            for _ in range(7200):  # bounded: about an hour
                row = ctx.store.get_investigation(inv_id) or {}
                try:
                    ev = await asyncio.to_thread(feed.get, True, 0.5)
                except queue_mod.Empty:
                    ev = None
                    if row.get("status") in FINAL:
                        break
                    continue
                if ev is None:
                    break
                yield f"event: {ev.name}\ndata: {ev.model_dump_json()}\n\n"
        finally:
            ctx.service.unfollow(inv_id, feed)
        row = ctx.store.get_investigation(inv_id) or {}
        summary = investigation_view(row, brief=True) if row else {}
        yield f"event: status\ndata: {json.dumps(summary, default=str)}\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


@router.get("/threads", response_model=list[ThreadView])
def list_threads(ctx: Ctx, _who: Viewer, limit: int = Query(50, ge=1, le=500)) -> list[dict[str, Any]]:
    """Chat threads, most recently used first."""
    return ctx.store.list_threads(limit)


@router.get("/threads/{thread_id}", response_model=ThreadDetail, responses={404: {"model": Problem}})
def get_thread(thread_id: str, ctx: Ctx, _who: Viewer) -> dict[str, Any]:
    """A thread's messages and investigations, to reopen it (continue with POST /chat, same threadId)."""
    found = ctx.store.get_thread(thread_id)
    if found is None:
        raise HTTPException(404, detail=f"no thread {thread_id}")
    invs = ctx.store.list_investigations(chat_thread=thread_id, limit=200)
    return {**found, "investigations": [investigation_view(r, brief=True) for r in invs]}
