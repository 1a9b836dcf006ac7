"""The copilot graph: plan -> specialists in parallel (Send) -> synthesize -> policy -> approval gate
-> execute approved actions -> verify."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Send

from agents.base import dependency_follow_ups
from agents.events import FollowUpAsked
from agents.registry import REGISTRY
from graphs.alert_answer import alert_lines
from graphs.approval import request_approval
from graphs.context import Context
from graphs.correlate import correlate
from graphs.correlate import key as chain_key
from graphs.coverage import coverage_from_state
from graphs.events import (
    AnswerReady,
    Explaining,
    ModelToken,
    PlanMade,
    PlannedEntity,
    PlannedSpecialist,
)
from graphs.execute import (
    check_approval,
    execute_actions,
    route_after_check,
    route_after_screening,
    screen_proposals,
    verify_outcomes,
)
from graphs.explain import explain
from graphs.investigate import consult_specialist
from graphs.planner import Embedder, read_scope, route_specialists
from graphs.request import RequestScope, understand
from graphs.state import InvestigationInput, PlanStep, SpecialistTask, State
from graphs.synthesize import build_report, order_findings, render_answer
from tools.base import Evidence, Finding
from tools.inventory import Entity, Inventory, build_inventory, learn_addresses
from tools.isolation import collecting_notes
from tools.world import parse_ts

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
        learn_addresses(inventory, ctx.sources)
    notes += source_notes
    subject = read_scope(request, alert, inventory)
    if not subject.entities and not subject.unknown and state.get("earlier"):
        # a follow-up in a conversation ("and yesterday?"): the earlier turns' entities
        earlier = _earlier_entities(state.get("earlier") or [], inventory, notes)
        if earlier:
            subject = subject.model_copy(update={"entities": earlier, "follow_up": False, "sweep": False})
    entities = subject.entities
    steps = route_specialists(request, alert, subject, inventory, ctx.model, _embedder(ctx), notes)
    plan_out = [s.model_dump(mode="json") for s in steps]
    lookback = timedelta(minutes=ctx.lookback_minutes)
    scope = understand(request, alert, parse_ts(state["now"]), lookback, names=sorted(inventory.names))
    emit(
        PlanMade(
            entities=[PlannedEntity(name=e.name, kinds=e.kinds) for e in entities],
            specialists=[PlannedSpecialist(name=s.specialist, reasons=s.reasons) for s in steps],
            scope=scope.describe(),
            terms=scope.term_texts,
            intent=list(scope.intent),
        )
    )
    return {
        "scope": scope.model_dump(mode="json"),
        "follow_up_round": 0,
        "pending_follow_ups": [],
        "request": request,
        "inventory": inventory.to_json(),
        "entities": [e.model_dump(mode="json") for e in entities],
        "subject": subject.model_dump(mode="json"),
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
            "scope": state.get("scope", {}),
        }
        sends.append(Send("consult_specialist", task))
    return sends


MAX_FOLLOW_UP_ROUNDS = 2


def follow_dependencies(state: State) -> dict[str, Any]:
    """Model-free follow-ups: a problem that names another known entity (its host:port, a database, a
    service) sends the specialist that owns it there, once, bounded (agents.base.dependency_follow_ups)."""
    emit = get_stream_writer()
    rounds = state.get("follow_up_round", 0)
    if rounds >= MAX_FOLLOW_UP_ROUNDS:
        return {"follow_up_round": rounds + 1, "pending_follow_ups": []}
    inventory = Inventory.from_json(state.get("inventory", {}))
    findings = [Finding.model_validate(f) for f in state.get("findings", [])]
    # looked at = the specialist's playbook ran there; one tool a model picked on the way does not count
    # (the whole playbook, e.g. the failover timeline, would otherwise never run on that entity)
    runs = state.get("specialist_runs", [])
    consulted = {(r["specialist"], n) for r in runs for n in r.get("playbook_entities", [])}
    consulted |= {(p["specialist"], n) for p in state.get("plan", []) for n in p.get("entities", [])}
    available = {name for name, spec in REGISTRY.items() if spec.has_data(inventory)}
    follow = dependency_follow_ups(findings, inventory, consulted, available)
    plan_out = list(state.get("plan", []))
    for f in follow:
        emit(FollowUpAsked(specialist=f.specialist, entity=f.entity, reason=f.reason))
        step = next((p for p in plan_out if p["specialist"] == f.specialist), None)
        if step is None:
            plan_out.append(
                PlanStep(
                    specialist=f.specialist, entities=[f.entity], reasons=[f"follow-up: {f.reason}"]
                ).model_dump(mode="json")
            )
        else:
            step = dict(step, reasons=[*step.get("reasons", []), f"follow-up: {f.reason}"])
            plan_out = [step if p["specialist"] == f.specialist else p for p in plan_out]
    return {
        "follow_up_round": rounds + 1,
        "pending_follow_ups": [f.model_dump(mode="json") for f in follow],
        "follow_ups": [f.model_dump(mode="json") for f in follow],
        "plan": plan_out,
    }


def follow_up_lines(follow_ups: list[dict[str, Any]]) -> list[str]:
    """The dependency follow-ups, for the answer."""
    return [f"Followed up: {f['specialist']} on {f['entity']} ({f['reason']})." for f in follow_ups]


def route_follow_ups(state: State) -> list[Send] | Literal["synthesize"]:
    """Send each new follow-up to its specialist (in parallel), else go on to the answer."""
    pending = state.get("pending_follow_ups") or []
    if not pending:
        return "synthesize"
    inventory = Inventory.from_json(state.get("inventory", {}))
    sends = []
    for f in pending:
        task: SpecialistTask = {
            "specialist": f["specialist"],
            "entities": [inventory.entity(f["entity"], matched_by="follow_up").model_dump(mode="json")],
            "inventory": state.get("inventory", {}),
            "request": state.get("request", ""),
            "now": state["now"],
            "scope": state.get("scope", {}),
            "reason": f["reason"],
        }
        sends.append(Send("consult_specialist", task))
    return sends


def synthesize(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """Turn findings into the answer; the model (if any) only adds an explanation on top."""
    ctx = runtime.context
    emit = get_stream_writer()
    findings = [Finding.model_validate(f) for f in state.get("findings", [])]
    inventory = Inventory.from_json(state.get("inventory", {}))
    now = parse_ts(state["now"])
    ordered = order_findings(findings)
    scope = RequestScope.model_validate(state["scope"]) if state.get("scope") else None
    correlation = correlate(ordered, inventory.resolve_address, now, scope.replicas if scope else None)
    numbers = {chain_key(f): i for i, f in enumerate(ordered, start=1)}
    context = alert_lines(state.get("alert"), now, ordered, correlation, numbers)
    subject, coverage = coverage_from_state(state)
    report = build_report(
        request=state.get("request", ""),
        model_name=ctx.model.name if ctx.model.available else "none",
        entities=[e["name"] for e in state.get("entities", [])],
        specialists=[p["specialist"] for p in state.get("plan", [])],
        evidence=[Evidence.model_validate(e) for e in state.get("evidence", [])],
        findings=findings,
        notes=list(dict.fromkeys(state.get("notes", []))),  # e.g. a dead backend, noted in this run
        correlation=correlation,
        window=scope.describe() if scope is not None else "",
        context=context + follow_up_lines(state.get("follow_ups", [])),
        subject=subject,
        coverage=coverage,
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


def route_after_synthesis(state: State) -> Literal["screen_proposals", "__end__"]:
    """Any proposed remediation goes to the policy and the approval gate; otherwise the investigation ends."""
    return "screen_proposals" if state.get("proposals") else "__end__"


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the copilot. Pass a checkpointer for approvals that survive a restart."""
    builder = StateGraph(State, context_schema=Context, input_schema=InvestigationInput)
    builder.add_node("plan", plan)
    builder.add_node("consult_specialist", consult_specialist)  # type: ignore[call-overload]
    builder.add_node("follow_dependencies", follow_dependencies)
    builder.add_node("synthesize", synthesize)
    builder.add_node("screen_proposals", screen_proposals)
    builder.add_node("request_approval", request_approval)
    builder.add_node("check_approval", check_approval)
    builder.add_node("execute_actions", execute_actions)
    builder.add_node("verify_outcomes", verify_outcomes)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", route_to_specialists, ["consult_specialist", "synthesize"])
    builder.add_edge("consult_specialist", "follow_dependencies")
    builder.add_conditional_edges(
        "follow_dependencies", route_follow_ups, ["consult_specialist", "synthesize"]
    )
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
    requester: str = "",
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
            "requester": requester,
        }
    if not question or not question.strip():
        raise ValueError("a question or an alert is required")
    return {
        "question": question.strip(),
        "alert": None,
        "now": clock,
        "source_ref": source_ref,
        "earlier": list(earlier or []),
        "requester": requester,
    }
