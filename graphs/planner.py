"""The planner: read what a request names and asks (its scope), then pick specialists by inventory, cues,
what they can see, similarity and the model."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, cast

from pydantic import BaseModel, Field, create_model

from agents.base import AgentSpec
from agents.llm import ModelHandle
from agents.prompting import render_messages
from agents.registry import REGISTRY
from graphs.concerns import CONCERN_WORDS, asked_concerns, is_broad, is_follow_up, wanted_concerns
from graphs.state import PlanStep, Scope, UnknownName
from tools.base import SPECIALISTS, Specialist
from tools.inventory import Entity, Inventory
from tools.redact import redact_text

log = logging.getLogger(__name__)

Embedder = Callable[[list[str]], list[list[float]]]

SEMANTIC_THRESHOLD = 0.40  # cosine between the request and a specialist description
KIND_WORDS = {
    "sql_instance": "a SQL instance",
    "device": "an SNMP device",
    "metric_entity": "has metric series",
    "log_entity": "has logs",
    "ci": "a configuration item in ITSM",
    "kb_service": "named in past incidents",
}


# Tokens that look like host names but are technology words (percentiles, versions, protocols ...).
NOT_NAMES = re.compile(
    r"p\d{2,3}"  # percentiles: p95, p99
    r"|(tls|ssl|https?|ipv|sha|md|utf|win|arm|amd|gp|ec|io)\d+(\.\d+)*"  # tls1.2, ipv6, sha256, gp3
    r"|x86_64|aarch64|log4j|k8s|(db|cache)\.[a-z0-9]+\.[a-z0-9]+"  # db.r5.large (a cloud instance class)
    r"|(inc|chg|prb|ritm|req|task|sctask|ctask)[-_]?\d+",  # ticket numbers
    re.I,
)
_TICKET_KEY = re.compile(r"[A-Z][A-Z0-9]{1,9}-\d+")  # a Jira key as written (OPS-1234)
_TOKEN = re.compile(r"(?<![\w.:/@=-])([a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*)(?::\d+)?(?![\w/@=-])", re.I)
_WORD = re.compile(r"(?<![\w.:/@=-])([a-z]{4,})(?![\w/@=-])", re.I)
# words that are never a service's name, besides the specialists' cues and concern words
_PLAIN_WORDS = (
    "this that there their these those what when where which while with from into about after before "
    "again since today tonight morning afternoon evening night users user team please pls help thanks "
    "queries query running right still being have been does could would should tell show check look "
    "something anything everything nothing someone server servers host hosts instance instances "
    "service services system systems page pages site"
)
_PLAIN = frozenset(_PLAIN_WORDS.split())


def candidate_names(text: str) -> list[str]:
    """Host-like tokens of free text: letters with digits (``sql-prod-02``, ``sqlprod01``, ``web23``) or
    parts joined by ``-``/``_``/``.`` (``payments-api``). Technology words (p95, tls1.2, x86_64) are not."""
    found = []
    for m in _TOKEN.finditer(text):
        token = m.group(1)
        letters = sum(ch.isalpha() for ch in token)
        digits = any(ch.isdigit() for ch in token)
        if NOT_NAMES.fullmatch(token) or _TICKET_KEY.fullmatch(token) or letters < 2:
            continue
        if digits or re.search(r"[-_]", token):
            found.append(token)
    return list(dict.fromkeys(found))


def _kind_word(kinds: set[str]) -> str:
    for kind, word in (
        ("sql_instance", "instance"),
        ("device", "device"),
        ("ci", "configuration item"),
        ("metric_entity", "host or service"),
        ("log_entity", "host or service"),
        ("service", "service"),
    ):
        if kind in kinds:
            return word
    return "name"


def _unknown(token: str, inventory: Inventory) -> UnknownName:
    closest = inventory.closest(token)
    if not closest:  # nothing alike: offer the names of the kind such a token usually is
        closest = inventory.of_kind("sql_instance")[:3] or sorted(inventory.names)[:3]
    kind = _kind_word(inventory.names.get(closest[0], set())) if closest else "name"
    return UnknownName(name=token, closest=closest, kind=kind)


def _service_words(request: str, inventory: Inventory, taken: set[str]) -> dict[str, list[str]]:
    """Plain words of the request that name a family of known names (``payments`` -> payments-api,
    payments-db), when the word itself is no known name."""
    skip = _PLAIN | {w for spec in REGISTRY.values() for w in spec.keywords} | set(CONCERN_WORDS)
    out: dict[str, list[str]] = {}
    for m in _WORD.finditer(request):
        word = m.group(1).lower()
        if word in skip or inventory.lookup(word):
            continue
        family = [n for n in inventory.named_after(word) if n not in taken]
        if family:
            out[word] = family
    return out


def read_scope(request: str, alert: dict[str, Any] | None, inventory: Inventory) -> Scope:
    """What the request is about: known names (also near misses and what named services run on),
    names no source knows, the concerns it asks about, and whether it is a sweep or a follow-up."""
    found: dict[str, Entity] = {}
    unknown: list[UnknownName] = []
    statements: list[str] = []

    def take(name: str, how: str, said: str | None = None, via: str | None = None) -> None:
        if name not in found:
            found[name] = inventory.entity(name, matched_by=how, said=said, via=via)

    if alert:
        candidates = [alert.get("entity")]
        for key in ("labels", "annotations"):
            candidates += [v for v in (alert.get(key) or {}).values() if isinstance(v, str)]
        for value in candidates:
            if value and (known := inventory.lookup(str(value))):
                take(known, "alert_entity" if value == alert.get("entity") else "label")
        if alert.get("entity") and not inventory.lookup(str(alert["entity"])):
            unknown.append(_unknown(str(alert["entity"]), inventory))
    for name in inventory.match_text(request):
        take(name, "name")
    if not alert:
        for token in candidate_names(request):
            if any(token.lower() == n.lower() for n in found) or any(
                token.lower() in n.lower() for n in found
            ):
                continue
            match = inventory.resolve(token)
            if match is not None:
                if match.known not in found:
                    statements.append(f"{token} → {match.known} (taken as the known name)")
                take(match.known, "near-miss", said=token)
            elif any(ch.isdigit() for ch in token):
                unknown.append(_unknown(token, inventory))
        for word, family in _service_words(request, inventory, set(found)).items():
            statements.append(f"{word} → {', '.join(family)} (known names that start with {word!r})")
            for name in family:
                take(name, "service", said=word, via=f"named after {word!r}")
    for entity in list(found.values()):
        if set(entity.kinds) & {"sql_instance", "device"}:
            continue  # an instance or device is examined itself, not what it is related to
        runs_on: dict[str, list[str]] = {}
        for name, why in inventory.related(entity.name).items():
            examinable = inventory.names.get(name, set()) - {"kb_service", "service"}
            if name not in found and examinable:  # only what some source can actually look at
                runs_on.setdefault(why, []).append(name)
                take(name, "service", said=entity.name, via=f"{entity.name} runs on it ({why})")
        statements += [f"{entity.name} runs on {', '.join(names)} ({why})" for why, names in runs_on.items()]
    concerns = asked_concerns(request)
    entities = list(found.values())
    follow_up = not entities and not unknown and is_follow_up(request)
    return Scope(
        entities=entities,
        unknown=unknown,
        concerns=concerns,
        broad=is_broad(request),
        sweep=not entities and not unknown,
        follow_up=follow_up,
        statements=statements,
    )


def extract_entities(request: str, alert: dict[str, Any] | None, inventory: Inventory) -> list[Entity]:
    """Names from the inventory that the alert's labels or the request's words point at."""
    return read_scope(request, alert, inventory).entities


def _has_cue(spec: AgentSpec, text: str) -> str | None:
    for word in spec.keywords:
        if re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text):
            return word
    return None


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


class _Route:
    def __init__(self) -> None:
        self.reasons: dict[Specialist, list[str]] = {}

    def add(self, name: Specialist, reason: str) -> None:
        self.reasons.setdefault(name, []).append(reason)


def _detects(spec: AgentSpec) -> set[str]:
    return {c for t in spec.tools for c in t.spec.detects}


def route_specialists(
    request: str,
    alert: dict[str, Any] | None,
    scope: Scope,
    inventory: Inventory,
    model: ModelHandle,
    embed: Embedder | None = None,
    notes: list[str] | None = None,
) -> list[PlanStep]:
    """Pick specialists: only those whose sources hold data, each with the reasons it was chosen.

    Nothing named: every specialist with data (a sweep). Only unknown names: none that would examine
    something else in their place (knowledge may still compare with past incidents)."""
    text = request.lower()
    entities = scope.entities
    available = {name: spec for name, spec in REGISTRY.items() if spec.has_data(inventory)}
    route = _Route()
    is_alert = alert is not None
    unknown_only = bool(scope.unknown) and not entities

    for name, spec in available.items():
        cue = _has_cue(spec, text)
        owned = [e for e in entities if set(e.kinds) & set(spec.entity_kinds)]
        if name in ("database", "network") and owned:
            route.add(name, f"{owned[0].name} is {KIND_WORDS[spec.entity_kinds[0]]}")
        elif name in ("metrics", "logs") and owned and (cue or is_alert):
            route.add(
                name,
                f"{owned[0].name} {KIND_WORDS[spec.entity_kinds[0]]}"
                + (f"; cue '{cue}'" if cue else "; alert"),
            )
        elif name == "itsm" and owned and (is_alert or scope.concerns):
            why = "alert" if is_alert else "a symptom"
            route.add(name, f"{why} on {owned[0].name}, {KIND_WORDS['ci']}: changes are a first suspect")
        elif name == "knowledge":
            route.add(name, f"{inventory.knowledge_size} past incidents to compare with")
        elif cue and name != "knowledge" and (not entities or name == "itsm" or not owned):
            route.add(name, f"cue '{cue}'")
        for entity in owned:  # a source that can see what is asked about the named thing is consulted
            sees = sorted(_detects(spec) & set(wanted_concerns(scope, entity)))
            if sees and name not in route.reasons:
                route.add(name, f"it can see {', '.join(sees)} on {entity.name}")
        if name == "logs" and alert and alert.get("source") == "elastic_watcher":
            route.add(name, "alert raised by an Elastic watcher")

    for entity in entities:  # a named thing is examined by what holds data on it, whatever the wording
        owners = [n for n, spec in available.items() if set(entity.kinds) & set(spec.entity_kinds)]
        if owners and not any(n in route.reasons for n in owners):
            for name in owners:
                route.add(name, f"{entity.name} is named and {name} holds data on it")

    if scope.sweep:
        for name in available:
            route.add(name, "nothing specific named: every source with data is swept")

    if embed is not None and available and not unknown_only:
        try:
            names = [n for n in available if n != "knowledge"]
            vectors = embed([request] + [available[n].description for n in names])
            for name, vec in zip(names, vectors[1:], strict=True):
                score = _cosine(vectors[0], vec)
                if score >= SEMANTIC_THRESHOLD:
                    route.add(name, f"similar to its remit ({score:.2f})")
        except Exception as exc:  # similarity is an extra signal; routing goes on without it
            log.warning("semantic routing skipped: %s", exc)
            if notes is not None:
                notes.append(f"semantic routing skipped: {exc}")

    if model.available and available and not unknown_only:
        choice = _model_route(request, entities, list(available.values()), model)
        for picked in choice:
            if picked in available:
                route.add(cast(Specialist, picked), "chosen by the model")

    if unknown_only:  # never examine something else in the unknown name's place
        route.reasons = {n: r for n, r in route.reasons.items() if not available[n].entity_kinds}

    steps = []
    for name in SPECIALISTS:
        if name in route.reasons:
            spec = available[name]
            own = [e.name for e in entities if set(e.kinds) & set(spec.entity_kinds)]
            steps.append(
                PlanStep(
                    specialist=name, entities=own or [e.name for e in entities], reasons=route.reasons[name]
                )
            )
    return steps


def _model_route(
    request: str, entities: list[Entity], specs: list[AgentSpec], model: ModelHandle
) -> list[str]:
    # One boolean per specialist: a fixed shape a 0.5B model fills reliably under a grammar
    # (an open list of names makes small models repeat items until max_tokens).
    fields: dict[str, Any] = {
        s.name: (bool, Field(description=f"consult {s.name}: {s.description[:80]}")) for s in specs
    }
    schema: type[BaseModel] = create_model("Routing", **fields)
    messages = render_messages(
        "planner.jinja2",
        specialists=[{"name": s.name, "description": s.description} for s in specs],
        request=redact_text(request),
        entities=[e.name for e in entities],
    )
    result = model.structured(messages, schema)
    return [s.name for s in specs if result is not None and getattr(result, s.name, False) is True]


__all__ = ["candidate_names", "extract_entities", "read_scope", "route_specialists"]
