"""What a specialist is, and the one loop every specialist runs: playbook, then bounded follow-ups."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from agents.events import Emit, FollowUpAsked, ToolFinished, ToolStarted
from agents.llm import ModelHandle
from agents.prompting import render_messages
from tools.base import SPECIALISTS, Evidence, Finding, Severity, Specialist, ToolKind, ToolResult, ViewTool
from tools.inventory import Entity, Inventory, replica_of
from tools.redact import redact_text
from tools.sources import ToolContext

log = logging.getLogger(__name__)


class ToolCall(BaseModel):
    tool: str
    entity: str
    args: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.tool}@{self.entity}:{sorted(self.args.items())}"


@dataclass(frozen=True)
class AgentSpec:
    """A specialist: what it knows (description), what cues send work to it, and its view tools."""

    name: Specialist
    description: str
    keywords: tuple[str, ...]
    entity_kinds: tuple[str, ...]
    tools: tuple[ViewTool, ...]
    plan_calls: Callable[[list[Entity], Inventory, str, ToolContext], list[ToolCall]]
    correlate: Callable[[list[Finding]], list[Finding]] | None = None

    def tool(self, name: str) -> ViewTool | None:
        return next((t for t in self.tools if t.spec.name == name), None)

    def has_data(self, inventory: Inventory) -> bool:
        if self.name == "knowledge":
            return inventory.knowledge_size > 0
        return any(inventory.of_kind(k) for k in self.entity_kinds)


class SpecialistRun(BaseModel):
    """What one specialist did: tools called, how long, how many model steps."""

    specialist: Specialist
    entities: list[str]
    playbook_entities: list[str] = Field(default_factory=list)  # what the playbook itself covered
    tool_calls: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    model_steps: int = 0
    errors: list[str] = Field(default_factory=list)


@dataclass
class SpecialistOutcome:
    run: SpecialistRun
    evidence: list[Evidence] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _execute(spec: AgentSpec, ctx: ToolContext, call: ToolCall, emit: Emit) -> ToolResult:
    tool = spec.tool(call.tool)
    if tool is None or tool.spec.kind is not ToolKind.VIEW:
        # Only this specialist's view tools can ever run here; actions live behind approval.
        return ToolResult()
    emit(ToolStarted(specialist=spec.name, tool=call.tool, entity=call.entity))
    started = time.perf_counter()
    try:
        result = tool(ctx, call.entity, **call.args)
    except Exception as exc:  # a tool bug must not sink the investigation; it becomes evidence
        log.exception("tool %s on %s failed", call.tool, call.entity)
        result = ToolResult(
            evidence=[
                Evidence(
                    id=f"{call.tool}@{call.entity}",
                    specialist=spec.name,
                    tool=call.tool,
                    entity=call.entity,
                    summary=f"{call.tool} failed on {call.entity}: {exc}",
                    error=str(exc),
                )
            ]
        )
    emit(
        ToolFinished(
            specialist=spec.name,
            tool=call.tool,
            entity=call.entity,
            seconds=round(time.perf_counter() - started, 3),
            findings=len(result.findings),
            error=next((e.error for e in result.evidence if e.error), None),
        )
    )
    return result


def _follow_up_schema(options: list[ToolCall]) -> type[BaseModel]:
    labels = (*sorted({f"{o.tool} {o.entity}" for o in options}), "done")
    return create_model(
        "FollowUp",
        choice=(Literal[labels], Field(description="the next view tool and entity to run, or done")),  # type: ignore[valid-type,arg-type]
        reason=(str, Field(default="", description="why, in one sentence")),
    )


def run_specialist(
    spec: AgentSpec,
    ctx: ToolContext,
    entities: list[Entity],
    inventory: Inventory,
    question: str,
    model: ModelHandle,
    step_budget: int,
    emit: Emit,
) -> SpecialistOutcome:
    """Run the specialist's playbook of view tools, then let a model ask for up to `step_budget` more."""
    started = time.perf_counter()
    run = SpecialistRun(specialist=spec.name, entities=[e.name for e in entities])
    outcome = SpecialistOutcome(run=run)
    done: set[str] = set()

    def absorb(call: ToolCall) -> None:
        done.add(call.key)
        result = _execute(spec, ctx, call, emit)
        run.tool_calls.append(f"{call.tool}({call.entity})")
        outcome.evidence.extend(result.evidence)
        outcome.findings.extend(result.findings)
        run.errors.extend(e.summary for e in result.evidence if e.error)

    playbook = spec.plan_calls(entities, inventory, question, ctx)
    for call in playbook:
        absorb(call)
    run.playbook_entities = list(dict.fromkeys(c.entity for c in playbook))

    if model.available and step_budget > 0:
        for _ in range(step_budget):
            options = [
                ToolCall(tool=t.spec.name, entity=name)
                for t in spec.tools
                for name in _candidate_entities(spec, inventory, outcome)
                if ToolCall(tool=t.spec.name, entity=name).key not in done
            ][:24]
            if not options:
                break
            messages = render_messages(
                "specialist.jinja2",
                specialist=spec.name,
                description=spec.description,
                question=redact_text(question),
                findings=[redact_text(f.text) for f in outcome.findings][:12],
                tools=[t.spec for t in spec.tools],
                options=[f"{o.tool} {o.entity}" for o in options],
            )
            choice = model.structured(messages, _follow_up_schema(options))
            run.model_steps += 1
            picked = getattr(choice, "choice", "done") if choice is not None else "done"
            if picked == "done":
                break
            call = next(o for o in options if f"{o.tool} {o.entity}" == picked)
            emit(FollowUpAsked(specialist=spec.name, tool=call.tool, entity=call.entity))
            absorb(call)

    if spec.correlate is not None:
        outcome.findings.extend(spec.correlate(outcome.findings))
    run.seconds = round(time.perf_counter() - started, 3)
    return outcome


def _candidate_entities(spec: AgentSpec, inventory: Inventory, outcome: SpecialistOutcome) -> list[str]:
    """Entities of this specialist's kinds that its findings mention but it has not examined."""
    if spec.name == "knowledge":
        return []
    text = " ".join(f.text for f in outcome.findings)
    examined = set(outcome.run.entities)
    names = {n for k in spec.entity_kinds for n in inventory.of_kind(k)}
    return sorted(n for n in names if n not in examined and n in text)


def playbook_over(
    kind: str, tools: list[ViewTool], max_entities: int
) -> Callable[[list[Entity], Inventory, str, ToolContext], list[ToolCall]]:
    """The usual plan: every tool on each named entity of `kind` (else every known one, capped)."""

    def plan_calls(
        entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
    ) -> list[ToolCall]:
        known = inventory.of_kind(kind)
        targets = [e.name for e in entities if e.name in known] or known
        return [ToolCall(tool=t.spec.name, entity=name) for name in targets[:max_entities] for t in tools]

    return plan_calls


# --- model-free dependency follow-ups -----------------------------------------------------------

MAX_FOLLOW_UPS = 3
_OWNERS: dict[str, Specialist] = {
    "sql_instance": "database",
    "metric_entity": "metrics",
    "log_entity": "logs",
    "device": "network",
    "ci": "itsm",
}


class FollowUp(BaseModel):
    """A bounded follow-up: the specialist that owns an entity a finding named, and why."""

    specialist: Specialist
    entity: str
    reason: str


def _named_entities(f: Finding, inventory: Inventory) -> list[tuple[str, str]]:
    """(entity, how it is named) for the known entities a finding points at other than its own."""
    out: list[tuple[str, str]] = []
    for key in ("peer", "peer_host"):
        value = f.data.get(key)
        if isinstance(value, str) and (name := inventory.resolve_address(value)) is not None:
            out.append((name, f"depends on {value}"))
    for name in inventory.match_text(f.text):
        out.append((name, "names it"))
    first: dict[str, str] = {}
    for name, how in out:
        first.setdefault(name, how)  # the most specific reason (the logged address) wins
    return [(n, how) for n, how in first.items() if n != f.entity]


_CHANGES = ("change_in_window", "log_precursor")  # a change names what it changed: worth a look even at info


def _replicas(entity: str, inventory: Inventory) -> list[str]:
    """Entities named as replicas of `entity` (`analytics-prod-replica-1` for `analytics-prod`)."""
    return sorted(n for n in inventory.names if replica_of(n, entity))


def dependency_follow_ups(
    findings: list[Finding],
    inventory: Inventory,
    consulted: set[tuple[str, str]],
    available: Collection[str],
    limit: int = MAX_FOLLOW_UPS,
) -> list[FollowUp]:
    """Without a model, for problems (warning or worse) and changes: another known entity a finding names (a
    host:port, a database instance, a service), the problem entity's own data in another specialist
    (its logs when its metrics moved), and its replicas each get a follow-up to the specialist owning
    them that has not looked yet; dependency failures first, at most `limit`."""
    ranked = sorted(
        (f for f in findings if f.severity is not Severity.INFO or f.kind in _CHANGES),
        key=lambda f: (f.kind != "dependency_failure", -f.severity.rank),
    )
    out: list[FollowUp] = []
    seen = set(consulted)
    for f in ranked:
        named = _named_entities(f, inventory)
        named.append((f.entity, "is where the problem is"))
        named += [(r, f"is a replica of {f.entity}") for r in _replicas(f.entity, inventory)]
        for name, how in named:
            owners = sorted(
                {_OWNERS[k] for k in inventory.names.get(name, set()) if k in _OWNERS}, key=SPECIALISTS.index
            )
            for owner in owners:
                if owner not in available or (owner, name) in seen:
                    continue
                seen.add((owner, name))
                subject = f"{f.entity} ({f.kind.replace('_', ' ')})"
                reason = (
                    f"{subject} {how}; {owner} has data on {name}"
                    if name != f.entity
                    else f"{subject}: {owner} has data on {name} too"
                )
                out.append(FollowUp(specialist=owner, entity=name, reason=reason))
                if len(out) >= limit:
                    return out
    return out
