"""The copilot graph: plan -> specialists in parallel (Send) -> synthesize -> policy -> approval gate
-> execute approved actions -> verify."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from graphs.approval import request_approval
from graphs.context import Context
from graphs.execute import (
    check_approval,
    execute_actions,
    route_after_check,
    route_after_screening,
    screen_proposals,
    verify_outcomes,
)
from graphs.investigate import consult_specialist
from graphs.planner import Embedder, extract_entities, route_specialists
from graphs.state import InvestigationInput, PlanStep, SpecialistTask, State
from graphs.synthesize import build_report, explain, render_answer
from tools.base import Evidence, Finding
from tools.inventory import build_inventory

log = logging.getLogger(__name__)


def _alert_text(alert: dict[str, Any]) -> str:
    from graphs.alerts import Alert, alert_text

    return alert_text(Alert.model_validate(alert))


def _embedder(ctx: Context) -> Embedder | None:
    if not ctx.semantic_routing:
        return None
    try:
        from tools.knowledge.store import embed_texts
    except ImportError as exc:  # the embedding model is optional for routing
        log.warning("semantic routing unavailable: %s", exc)
        return None
    return embed_texts


def plan(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Work out what the request is about and which specialists to consult."""
    ctx = runtime.context
    emit = get_stream_writer()
    alert = state.get("alert")
    request = state.get("question") or (_alert_text(alert) if alert else "")
    notes: list[str] = [ctx.model.note] if ctx.model.note else []
    inventory = build_inventory(ctx.sources)
    entities = extract_entities(request, alert, inventory)
    steps = route_specialists(request, alert, entities, inventory, ctx.model, _embedder(ctx), notes)
    plan_out = [s.model_dump(mode="json") for s in steps]
    emit(
        {
            "event": "plan",
            "entities": [{"name": e.name, "kinds": e.kinds} for e in entities],
            "specialists": [{"name": s.specialist, "reasons": s.reasons} for s in steps],
        }
    )
    return {
        "request": request,
        "inventory": inventory.to_json(),
        "entities": [e.model_dump(mode="json") for e in entities],
        "plan": plan_out,
        "notes": notes,
        "status": "investigating",
        "evidence": [],
        "findings": [],
        "specialist_runs": [],
    }


def route_to_specialists(state: State) -> list[Send] | Literal["synthesize"]:
    """Fan out: one Send per planned specialist, all run in parallel."""
    steps = [PlanStep.model_validate(p) for p in state.get("plan", [])]
    if not steps:
        return "synthesize"
    entities = {e["name"]: e for e in state.get("entities", [])}
    sends = []
    for step in steps:
        task: SpecialistTask = {
            "specialist": step.specialist,
            "entities": [entities[n] for n in step.entities if n in entities],
            "inventory": state.get("inventory", {}),
            "request": state.get("request", ""),
            "now": state["now"],
        }
        sends.append(Send("consult_specialist", task))
    return sends


def synthesize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Turn findings into the answer; the model (if any) only adds an explanation on top."""
    ctx = runtime.context
    emit = get_stream_writer()
    report = build_report(
        request=state.get("request", ""),
        model_name=ctx.model.name if ctx.model.available else "none",
        entities=[e["name"] for e in state.get("entities", [])],
        specialists=[p["specialist"] for p in state.get("plan", [])],
        evidence=[Evidence.model_validate(e) for e in state.get("evidence", [])],
        findings=[Finding.model_validate(f) for f in state.get("findings", [])],
        notes=list(dict.fromkeys([*state.get("notes", []), *ctx.sources.notes])),  # e.g. a dead backend
    )
    if ctx.model.available:
        emit({"event": "explaining", "model": ctx.model.name})
        report.explanation = explain(
            report, ctx.model, on_token=lambda t: emit({"event": "token", "text": t})
        )
        if report.explanation is None and ctx.model.note:
            report.notes.append(ctx.model.note)
    answer = render_answer(report)
    proposals = [p.model_dump(mode="json") for p in report.proposals]
    emit({"event": "answer", "text": answer, "proposals": proposals})
    return {
        "answer": answer,
        "report": report.model_dump(mode="json"),
        "proposals": proposals,
        "executed_actions": [],
        "status": "awaiting_approval" if proposals else "done",
    }


def route_after_synthesis(state: State) -> Literal["screen_proposals", "__end__"]:
    """Any proposed remediation goes to the policy and the approval gate; otherwise the investigation ends."""
    return "screen_proposals" if state.get("proposals") else "__end__"


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the copilot. Pass a checkpointer for approvals that survive a restart."""
    builder = StateGraph(State, context_schema=Context, input_schema=InvestigationInput)
    builder.add_node("plan", plan)
    builder.add_node("consult_specialist", consult_specialist)  # type: ignore[call-overload]
    builder.add_node("synthesize", synthesize)
    builder.add_node("screen_proposals", screen_proposals)
    builder.add_node("request_approval", request_approval)
    builder.add_node("check_approval", check_approval)
    builder.add_node("execute_actions", execute_actions)
    builder.add_node("verify_outcomes", verify_outcomes)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route_to_specialists, ["consult_specialist", "synthesize"])
    builder.add_edge("consult_specialist", "synthesize")
    builder.add_conditional_edges("synthesize", route_after_synthesis, ["screen_proposals", END])
    builder.add_conditional_edges(
        "screen_proposals", route_after_screening, ["request_approval", "execute_actions", END]
    )
    builder.add_edge("request_approval", "check_approval")
    builder.add_conditional_edges(
        "check_approval", route_after_check, ["request_approval", "execute_actions", END]
    )
    builder.add_edge("execute_actions", "verify_outcomes")
    builder.add_edge("verify_outcomes", END)
    return builder.compile(checkpointer=checkpointer, name="opscopilot")


def make_input(
    *,
    question: str | None = None,
    alert_source: str | None = None,
    alert_payload: dict[str, Any] | None = None,
    now: datetime | None = None,
    source_ref: str = "",
    requester: str = "",
) -> InvestigationInput:
    """Build the graph input from a question or a raw webhook body (normalised; AlertError if malformed)."""
    from graphs.alerts import detect_source, normalize_alert

    clock = (now or datetime.now(UTC)).isoformat()
    if alert_payload is not None:
        source = alert_source or detect_source(alert_payload)
        alerts = normalize_alert(source, alert_payload)
        firing = [a for a in alerts if a.status != "resolved"] or alerts
        return {
            "question": "",
            "alert": firing[0].model_dump(mode="json"),
            "now": clock,
            "source_ref": source_ref,
            "requester": requester,
        }
    if not question or not question.strip():
        raise ValueError("a question or an alert is required")
    return {
        "question": question.strip(),
        "alert": None,
        "now": clock,
        "source_ref": source_ref,
        "requester": requester,
    }
