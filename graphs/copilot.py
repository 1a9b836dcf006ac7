"""The copilot graph: plan -> specialists in parallel (Send) -> synthesize -> approval gate."""

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
from graphs.events import AnswerReady, Explaining, ModelToken, PlanMade, PlannedEntity, PlannedSpecialist
from graphs.investigate import consult_specialist
from graphs.planner import Embedder, extract_entities, route_specialists
from graphs.state import InvestigationInput, PlanStep, SpecialistTask, State
from graphs.synthesize import build_report, explain, render_answer
from tools.base import Evidence, Finding
from tools.inventory import Entity, Inventory, build_inventory
from tools.isolation import collecting_notes

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
    with collecting_notes() as source_notes:  # per run: a source that could not be read
        inventory = build_inventory(ctx.sources)
    notes += source_notes
    entities = extract_entities(request, alert, inventory)
    if not entities and state.get("earlier"):  # a follow-up in a conversation ("and yesterday?")
        entities = _earlier_entities(state.get("earlier") or [], inventory, notes)
    steps = route_specialists(request, alert, entities, inventory, ctx.model, _embedder(ctx), notes)
    plan_out = [s.model_dump(mode="json") for s in steps]
    emit(
        PlanMade(
            entities=[PlannedEntity(name=e.name, kinds=e.kinds) for e in entities],
            specialists=[PlannedSpecialist(name=s.specialist, reasons=s.reasons) for s in steps],
        )
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


def _earlier_entities(earlier: list[dict[str, Any]], inventory: Inventory, notes: list[str]) -> list[Entity]:
    """The entities the earlier turns of the conversation were about, newest turn first."""
    names: list[str] = []
    for turn in reversed(earlier):
        for name in turn.get("entities", []):
            known = inventory.lookup(str(name))
            if known and known not in names:
                names.append(known)
        if names:
            break
    if names:
        notes.append(f"follow-up question: examined {', '.join(names)} from the earlier question")
    return [inventory.entity(n, matched_by="earlier") for n in names]


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
        notes=list(dict.fromkeys(state.get("notes", []))),  # e.g. a dead backend, noted in this run
    )
    if ctx.model.available:
        emit(Explaining(model=ctx.model.name))
        report.explanation = explain(report, ctx.model, on_token=lambda t: emit(ModelToken(text=t)))
        if report.explanation is None and ctx.model.note:
            report.notes.append(ctx.model.note)
    answer = render_answer(report)
    proposals = [p.model_dump(mode="json") for p in report.proposals]
    emit(AnswerReady(text=answer, proposals=proposals))
    return {
        "answer": answer,
        "report": report.model_dump(mode="json"),
        "proposals": proposals,
        "executed_actions": [],
        "status": "awaiting_approval" if proposals else "done",
    }


def route_after_synthesis(state: State) -> Literal["request_approval", "__end__"]:
    """Any proposed remediation stops at the approval gate; otherwise the investigation ends."""
    return "request_approval" if state.get("proposals") else "__end__"


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the copilot. Pass a checkpointer for approvals that survive a restart."""
    builder = StateGraph(State, context_schema=Context, input_schema=InvestigationInput)
    builder.add_node("plan", plan)
    builder.add_node("consult_specialist", consult_specialist)  # type: ignore[call-overload]
    builder.add_node("synthesize", synthesize)
    builder.add_node("request_approval", request_approval)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route_to_specialists, ["consult_specialist", "synthesize"])
    builder.add_edge("consult_specialist", "synthesize")
    builder.add_conditional_edges("synthesize", route_after_synthesis, ["request_approval", END])
    builder.add_edge("request_approval", END)
    return builder.compile(checkpointer=checkpointer, name="opscopilot")


MAX_ALERT_TEXT = 2000  # a label, annotation or summary longer than this is cut (the body is stored whole)


def alert_state(alert: Any) -> dict[str, Any]:
    """An alert as it travels in graph state: without the raw body and with long texts cut, so a
    5 MB webhook body is stored once (by the service), not in every checkpoint."""
    from graphs.alerts import Alert

    a = alert if isinstance(alert, Alert) else Alert.model_validate(alert)

    def cut(text: str) -> str:
        return text if len(text) <= MAX_ALERT_TEXT else text[:MAX_ALERT_TEXT] + " [cut]"

    data = a.model_dump(mode="json", exclude={"raw"})
    data["labels"] = {k[:200]: cut(v) for k, v in list(a.labels.items())[:100]}
    data["annotations"] = {k[:200]: cut(v) for k, v in list(a.annotations.items())[:100]}
    data["summary"] = cut(a.summary)
    data["values"] = {k: v for k, v in list(a.values.items())[:50] if isinstance(v, int | float | str | bool)}
    return data


def make_input(
    *,
    question: str | None = None,
    alert_source: str | None = None,
    alert_payload: dict[str, Any] | None = None,
    alert: Any = None,
    now: datetime | None = None,
    source_ref: str = "",
    earlier: list[dict[str, Any]] | None = None,
) -> InvestigationInput:
    """Build the graph input from a question, a normalised `alert`, or a raw webhook body.

    A raw body is normalised (AlertError if malformed); its first firing alert is investigated.
    A body whose alerts are all resolved raises AlertsResolved: there is nothing to investigate."""
    from graphs.alerts import AlertsResolved, detect_source, normalize_alert

    clock = (now or datetime.now(UTC)).isoformat()
    if alert is None and alert_payload is not None:
        source = alert_source or detect_source(alert_payload)
        alerts = normalize_alert(source, alert_payload)
        firing = [a for a in alerts if a.status != "resolved"]
        if not firing:
            raise AlertsResolved(f"all {len(alerts)} alert(s) in this {source} body are resolved")
        alert = firing[0]
    if alert is not None:
        return {
            "question": "",
            "alert": alert_state(alert),
            "now": clock,
            "source_ref": source_ref,
            "earlier": list(earlier or []),
        }
    if not question or not question.strip():
        raise ValueError("a question or an alert is required")
    return {
        "question": question.strip(),
        "alert": None,
        "now": clock,
        "source_ref": source_ref,
        "earlier": list(earlier or []),
    }
