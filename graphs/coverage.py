"""What an investigation actually examined: per entity, the concerns the tools that ran can see, what was
asked but not checked (and why), what could not be read, and what a capped sweep left out.

"Checked" is the union of `detects` (tools/coverage.py) of the view tools that ran *successfully* on an
entity. A new view tool that declares what it detects is picked up here without any change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from agents.base import AgentSpec
from agents.registry import REGISTRY
from graphs.concerns import expected_concerns, wanted_concerns
from graphs.state import PlanStep, Scope, UnknownName
from tools.base import Evidence
from tools.coverage import CONCERN_WORDS, CONCERNS
from tools.inventory import Entity, Inventory

# the source behind each specialist, as the settings call it and as an operator says it
SOURCE_OF = {
    "database": ("sql", "database"),
    "logs": ("logs", "log"),
    "metrics": ("metrics", "metrics"),
    "network": ("snmp", "SNMP"),
    "itsm": ("itsm", "ITSM"),
    "knowledge": ("knowledge", "knowledge"),
}
NOT_ENTITIES = {"estate", "*", ""}  # evidence about the whole estate (past incidents, every CI)
MAX_LISTED = 6


class Gap(BaseModel):
    """Concerns wanted on an entity that no successful tool could see, and why."""

    entity: str
    concerns: list[str]
    reason: str


class Unread(BaseModel):
    """An entity every read of which failed (unreachable, timed out, circuit open)."""

    entity: str
    reason: str
    failed: int


class Coverage(BaseModel):
    """What was examined, and what was not, for the report's headline and the lines under it."""

    checked: dict[str, dict[str, list[str]]] = Field(default_factory=dict)  # entity -> specialist -> concerns
    gaps: list[Gap] = Field(default_factory=list)
    unread: list[Unread] = Field(default_factory=list)
    unexamined: list[str] = Field(default_factory=list)  # named, known, but no specialist looked at it
    left_out: dict[str, list[str]] = Field(default_factory=dict)  # specialist -> known names a cap left out
    unknown: list[UnknownName] = Field(default_factory=list)
    asked: list[str] = Field(default_factory=list)  # concerns the request named
    broad: bool = False  # a general health question
    asked_unchecked: list[str] = Field(default_factory=list)  # of those, checked on no target
    partial: list[Gap] = Field(default_factory=list)  # asked, checked, but a source that sees more is missing
    targets: list[str] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Everything wanted was checked somewhere, everything named was read."""
        return bool(self.checked) and not (self.gaps or self.unread or self.unexamined or self.unknown)


def words(concerns: Iterable[str]) -> str:
    """["long_running", "deadlocks"] -> "long-running statements and deadlocks"."""
    items = [CONCERN_WORDS.get(c, c) for c in concerns]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _names(items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else ""
    return ", ".join(shown) + more


def detects_of(specialist: str, tool: str) -> set[str]:
    spec = REGISTRY.get(specialist)  # type: ignore[call-overload]
    found = spec.tool(tool) if spec is not None else None
    return set(found.spec.detects) if found is not None else set()


def _relevant(kinds: list[str]) -> set[str]:
    """Concerns that make sense for an entity of these kinds: expected for the kind, or seen by a
    specialist that owns the kind."""
    found = set(expected_concerns(kinds))
    for spec in REGISTRY.values():
        if set(spec.entity_kinds) & set(kinds):
            found |= {c for t in spec.tools for c in t.spec.detects}
    return found


PRIMARY_KINDS = ("sql_instance", "device", "ci", "metric_entity", "log_entity")


def _owners(kinds: list[str]) -> list[AgentSpec]:
    """The specialists owning an entity of these kinds, what it primarily is first (an instance, then
    a device, a CI, something with metrics, something with logs)."""
    ranked = sorted((k for k in kinds if k in PRIMARY_KINDS), key=PRIMARY_KINDS.index)
    return [s for k in ranked for s in REGISTRY.values() if k in s.entity_kinds]


def short_error(error: str) -> str:
    """The gist of a read failure: 'circuit open after 3 connection failures', 'unreachable at host:port:
    connection refused', 'timed out after 3 s'."""
    text = re.sub(r"^\w+Error: ", "", error).strip()
    if m := re.search(r"circuit open[^;:(]*", text, re.I):
        return m.group(0).strip()
    if m := re.search(r"unreachable( at [^\s:]+:\d+)?", text, re.I):
        rest = text[m.end() :].lstrip(": ")
        why = next((w for w in ("connection refused", "timed out", "timeout") if w in rest.lower()), "")
        return m.group(0) + (f": {why}" if why else f": {rest[:80]}" if rest else "")
    if m := re.search(r"(timed out|no [\w ]+ source is configured)[^;:]*", text, re.I):
        return m.group(0).strip()
    return text if len(text) <= 100 else text[:97] + "..."


def _seers(concern: str) -> list[AgentSpec]:
    """The specialists with a view tool that detects `concern`."""
    return [s for s in REGISTRY.values() if any(concern in t.spec.detects for t in s.tools)]


def _unconfigured(spec: AgentSpec, inventory: Inventory) -> bool:
    """No source of this specialist's kind is configured, and it has no data from elsewhere."""
    return SOURCE_OF[spec.name][0] not in inventory.sources and not spec.has_data(inventory)


def _why_unseen(concern: str, entity: Entity, inventory: Inventory, consulted: set[str]) -> str:
    """Why nothing saw `concern` on `entity`: the sources that could, and what they lack."""
    reasons = []
    seers = _seers(concern)
    owner = next((s for s in _owners(entity.kinds)), None)
    if owner is not None and owner not in seers:  # what the thing is cannot see it
        reasons.append(f"no {SOURCE_OF[owner.name][1]} tool reads them")
    for spec in seers:
        word = SOURCE_OF[spec.name][1]
        if _unconfigured(spec, inventory):
            reasons.append(f"no {word} source configured")
        elif not set(spec.entity_kinds) & set(entity.kinds):
            reasons.append(f"no {word} data for {entity.name}")
        elif spec.name not in consulted:
            reasons.append(f"{spec.name} was not consulted")
        else:  # consulted, and it knows the entity, but its source does not provide the data these need
            reasons.append(f"the {word} source does not provide them for {entity.name}")
    if not seers and not reasons:
        reasons.append("no tool here reads them")
    return "; ".join(dict.fromkeys(reasons))


def _partial(
    target: Entity, concerns: list[str], seen_by: dict[str, set[str]], inventory: Inventory
) -> list[Gap]:
    """Asked concerns checked on `target` by some specialists while another that sees more of them (a
    deadlock's details are in the server log, not in the database's counters) has no source or no data
    for it: said next to the headline, so "checked" is not read as "everything there is was read"."""
    by_reason: dict[str, list[str]] = {}
    for concern in concerns:
        reasons = [
            f"{spec.name}: no {SOURCE_OF[spec.name][1]} source configured"
            for spec in _seers(concern)
            if spec.name != "knowledge"
            and concern not in seen_by.get(spec.name, set())
            and _unconfigured(spec, inventory)
        ]
        if reasons:
            checked_by = [s for s, cs in seen_by.items() if concern in cs]
            why = f"checked by {', '.join(checked_by)} only; not by " + "; ".join(dict.fromkeys(reasons))
            by_reason.setdefault(why, []).append(concern)
    return [Gap(entity=target.name, concerns=c, reason=r) for r, c in by_reason.items()]


def assess_coverage(
    scope: Scope, steps: list[PlanStep], evidence: list[Evidence], inventory: Inventory
) -> Coverage:
    """Compare what was wanted (asked, or expected for the kind) with what the tools that ran can see."""
    ok: dict[str, dict[str, set[str]]] = {}
    failed: dict[str, list[tuple[set[str], str]]] = {}
    for ev in evidence:
        if ev.specialist == "knowledge" or ev.entity in NOT_ENTITIES:
            continue
        detects = detects_of(ev.specialist, ev.tool)
        if ev.error:
            failed.setdefault(ev.entity, []).append((detects, ev.error))
        else:
            ok.setdefault(ev.entity, {}).setdefault(ev.specialist, set()).update(detects)
    consulted: set[str] = {s.specialist for s in steps}
    targets = list(scope.entities) or [inventory.entity(n) for n in dict.fromkeys([*ok, *failed])]
    asked = [c for c in scope.concerns if any(c in _relevant(t.kinds) for t in targets)]
    cov = Coverage(
        unknown=list(scope.unknown), asked=asked, broad=scope.broad, targets=[t.name for t in targets]
    )
    order = {c: i for i, c in enumerate(CONCERNS)}
    for target in targets:
        seen = set().union(*ok.get(target.name, {}).values()) if target.name in ok else set()
        fails = failed.get(target.name, [])
        if target.name in ok:
            cov.checked[target.name] = {
                s: sorted(c, key=order.__getitem__) for s, c in ok[target.name].items() if c
            }
        if fails and target.name not in ok:
            cov.unread.append(Unread(entity=target.name, reason=short_error(fails[0][1]), failed=len(fails)))
            continue
        if target.name not in ok:
            if set(target.kinds) - {"kb_service", "service"}:
                cov.unexamined.append(target.name)
            continue
        wanted = set(wanted_concerns(scope, target)) & _relevant(target.kinds)
        missing = sorted(wanted - seen, key=order.__getitem__)
        unreadable = {c for detects, _ in fails for c in detects}
        by_reason: dict[str, list[str]] = {}
        for concern in missing:
            if concern in unreadable:
                error = next(e for d, e in fails if concern in d)
                reason = f"the read failed: {short_error(error)}"
            else:
                reason = _why_unseen(concern, target, inventory, consulted)
            by_reason.setdefault(reason, []).append(concern)
        cov.gaps += [Gap(entity=target.name, concerns=c, reason=r) for r, c in by_reason.items()]
        cov.partial += _partial(target, [c for c in asked if c in seen], ok[target.name], inventory)
    examined_any = {n for n in [*ok, *failed]}
    cov.asked_unchecked = [
        c for c in asked if not any(c in cs for per in cov.checked.values() for cs in per.values())
    ]
    for step in steps:  # a sweep or a cap: which known names of the specialist's kind were not examined
        spec = REGISTRY[step.specialist]
        named = [n for n in step.entities if any(n in inventory.of_kind(k) for k in spec.entity_kinds)]
        if named or not spec.entity_kinds:
            continue
        known = sorted({n for k in spec.entity_kinds for n in inventory.of_kind(k)})
        left = [n for n in known if n not in examined_any]
        if left and any(n in examined_any for n in known):
            cov.left_out[step.specialist] = left
    return cov


def checked_summary(cov: Coverage) -> str:
    """E.g. "database: blocking, waits (sql-prod-01); metrics: latency (checkout)": the entities are left
    out when the specialist checked the same on every examined one."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for entity, per in cov.checked.items():
        for specialist, concerns in per.items():
            grouped.setdefault((specialist, tuple(concerns)), []).append(entity)
    return "; ".join(
        f"{specialist}: {', '.join(CONCERN_WORDS.get(c, c) for c in seen)}"
        + ("" if len(entities) == len(cov.checked) else f" ({_names(entities)})")
        for (specialist, seen), entities in grouped.items()
    )


def unread_line(r: Unread) -> str:
    """E.g. "Could not read pg-2 (unreachable at ...; 4 reads failed): its state is unknown, not healthy"."""
    reads = f"{r.failed} read{'s' if r.failed != 1 else ''} failed"
    return f"Could not read {r.entity} ({r.reason}; {reads}): its state is unknown, not healthy."


def statements(cov: Coverage, scope: Scope, omit_concerns: Iterable[str] = ()) -> list[str]:
    """What was not seen, and how the request was read, said next to the headline (concerns the
    headline already named as not checked are left out)."""
    omitted = set(omit_concerns)
    lines = []
    for u in cov.unknown:
        known = f"; known: {', '.join(u.closest)}" if u.closest else ""
        lines.append(f"{u.name} is not a known {u.kind}{known}. Nothing else was examined in its place.")
    if scope.follow_up:
        lines.append(
            "This reads as a follow-up, but there is no earlier investigation to refer to (each question "
            "starts fresh): below is a fresh sweep of every source with data. Name the system or symptom "
            "to narrow it."
        )
    lines += [f"Read as: {s}." for s in scope.statements]
    lines += [unread_line(r) for r in cov.unread]
    per_entity: dict[str, list[str]] = {}
    for g in cov.gaps:
        if left := [c for c in g.concerns if c not in omitted]:
            per_entity.setdefault(g.entity, []).append(f"{words(left)} ({g.reason})")
    grouped: dict[str, list[str]] = {}
    for entity, parts in per_entity.items():
        grouped.setdefault("; ".join(parts), []).append(entity)
    for text, entities in grouped.items():
        lines.append(f"Not checked on {_names(entities)}: {text}.")
    for g in cov.partial:
        lines.append(f"{words(g.concerns).capitalize()} on {g.entity}: {g.reason}.")
    for name in cov.unexamined:
        lines.append(f"{name} was not examined: no consulted specialist reads it.")
    for specialist, left in cov.left_out.items():
        lines.append(
            f"Not examined by {specialist}: {_names(left)} (a sweep examines only the first few; name one to "
            "examine it)."
        )
    if scope.sweep and cov.checked:
        lines.append("Nothing specific was named, so every source with data was swept.")
    return lines


def coverage_from_state(state: Mapping[str, Any]) -> tuple[Scope, Coverage]:
    """The planner's scope and the coverage of what the specialists gathered, from the graph state."""
    scope = Scope.model_validate(state.get("subject") or {"entities": state.get("entities", [])})
    steps = [PlanStep.model_validate(p) for p in state.get("plan", [])]
    evidence = [Evidence.model_validate(e) for e in state.get("evidence", [])]
    inventory = Inventory.from_json(state.get("inventory") or {})
    return scope, assess_coverage(scope, steps, evidence, inventory)
