"""`POST /chat`: an AG-UI RunAgentInput in, the run's AG-UI events out over SSE.

A new user message starts an investigation on the thread (earlier turns give a follow-up its
entities); a run carrying `resume` answers the approval interrupt of an earlier run instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ag_ui.core import RunAgentInput, RunErrorEvent
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from server.agui import Translator, decision_from_resume
from server.api_models import Problem
from server.deps import AUTH_RESPONSES, AppContext, Ctx, Operator
from server.events import Event, RunDone
from server.investigations import DecisionRefused, NewInvestigation
from server.principals import Principal
from server.streaming import in_thread

router = APIRouter(tags=["chat"], responses=AUTH_RESPONSES)


def _question(body: RunAgentInput) -> str:
    for msg in reversed(body.messages):
        if msg.role == "user":
            content = msg.content
            if isinstance(content, str):
                return content.strip()
            return " ".join(
                getattr(p, "text", "") for p in content if getattr(p, "type", "") == "text"
            ).strip()
    return ""


def _earlier(ctx: AppContext, thread_id: str) -> list[dict[str, Any]]:
    """The thread's earlier turns, oldest first, with the entities each examined."""
    turns = []
    for row in reversed(ctx.store.list_investigations(chat_thread=thread_id, limit=10)):
        values = ctx.service.graph.get_state({"configurable": {"thread_id": row["id"]}}).values or {}
        turns.append(
            {
                "question": row["request"][:500],
                "headline": (row.get("headline") or "")[:300],
                "entities": [e["name"] for e in values.get("entities", [])],
            }
        )
    return turns


@router.post(
    "/chat",
    response_class=StreamingResponse,
    responses={
        200: {"description": "AG-UI events as server-sent events", "content": {"text/event-stream": {}}},
        403: {"model": Problem},
        404: {"model": Problem},
        409: {"model": Problem},
        422: {"model": Problem},
    },
)
async def chat(body: RunAgentInput, request: Request, ctx: Ctx, who: Operator) -> StreamingResponse:
    """Ask in a thread and watch the investigation: steps per specialist, tool calls, the model's
    tokens as they arrive, findings/evidence/citations (CUSTOM `opscopilot.report` and the state
    snapshot). A pause at the approval gate ends the run with an interrupt outcome; answer it with a
    new run on the same thread whose `resume` names the interrupt id and a {decision, comment}."""
    if body.resume:
        events = _resume(body, ctx, who)
    else:
        question = _question(body)
        if not question:
            raise HTTPException(422, detail="messages has no user message with text to investigate")
        events = _ask(body, question, ctx, who)  # a generator: its store work runs after RUN_STARTED
    translator = Translator(body.thread_id, body.run_id)
    # ag_ui annotates `accept: str = None` (an implicit Optional): None is its own default
    encoder = EventEncoder(accept=request.headers.get("accept"))  # type: ignore[arg-type]

    async def stream() -> AsyncIterator[str]:
        yield encoder.encode(translator.started())  # first, before any slow work
        answer = ""
        try:
            async for ev in in_thread(events, name=f"chat-{body.run_id}"):
                if isinstance(ev.body, RunDone):
                    answer = ev.body.answer
                for out in translator(ev):
                    yield encoder.encode(out)
        except Exception as exc:  # our fault: the client gets RUN_ERROR, the log the details
            yield encoder.encode(RunErrorEvent(message=f"{type(exc).__name__}: {exc}", code="failed"))
        if answer and not body.resume:
            ctx.store.add_message(
                body.thread_id, body.run_id, "assistant", answer, translator.investigation_id
            )

    return StreamingResponse(stream(), media_type=encoder.get_content_type())


def _ask(body: RunAgentInput, question: str, ctx: AppContext, who: Principal) -> Iterator[Event]:
    earlier = _earlier(ctx, body.thread_id)
    inv_id = ctx.service.create(
        NewInvestigation(
            kind="chat",
            question=question,
            requester=who.name,
            source_ref=ctx.source_ref,
            now=ctx.clock,
            chat_thread=body.thread_id,
            earlier=earlier,
        )
    )
    ctx.store.touch_thread(body.thread_id, question, who.name)
    ctx.store.add_message(body.thread_id, body.run_id, "user", question, inv_id)
    yield from ctx.service.stream(inv_id)


def _resume(body: RunAgentInput, ctx: AppContext, who: Principal) -> Iterator[Event]:
    entry = (body.resume or [])[0]
    try:
        decision, comment, fingerprint = decision_from_resume(entry.payload, entry.status)
    except ValueError:
        raise HTTPException(422, detail="resume payload needs decision: approve or reject") from None
    if ctx.no_auth and isinstance(entry.payload, dict) and entry.payload.get("approver"):
        who = Principal(name=str(entry.payload["approver"]), role="admin", via="none")
    try:
        return ctx.service.decide(
            entry.interrupt_id, decision, who, comment=comment, fingerprint_shown=fingerprint
        )
    except DecisionRefused as exc:
        raise HTTPException(exc.status, detail=str(exc)) from None
