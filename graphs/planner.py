"""The planner: extract entities, then pick specialists by inventory, cues, similarity and the model."""

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
from graphs.state import PlanStep
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


def extract_entities(request: str, alert: dict[str, Any] | None, inventory: Inventory) -> list[Entity]:
    """Names from the inventory that the alert's labels or the request's words point at."""
    found: dict[str, str] = {}
    if alert:
        candidates = [alert.get("entity")]
        for key in ("labels", "annotations"):
            candidates += [v for v in (alert.get(key) or {}).values() if isinstance(v, str)]
        for value in candidates:
            if value and (known := inventory.lookup(str(value))):
                found.setdefault(known, "alert_entity" if value == alert.get("entity") else "label")
    for name in inventory.match_text(request):
        found.setdefault(name, "name")
    return [inventory.entity(name, matched_by=how) for name, how in found.items()]


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


def route_specialists(
    request: str,
    alert: dict[str, Any] | None,
    entities: list[Entity],
    inventory: Inventory,
    model: ModelHandle,
    embed: Embedder | None = None,
    notes: list[str] | None = None,
) -> list[PlanStep]:
    """Pick specialists: only those whose sources hold data, each with the reasons it was chosen."""
    text = request.lower()
    available = {name: spec for name, spec in REGISTRY.items() if spec.has_data(inventory)}
    route = _Route()
    is_alert = alert is not None

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
        elif name == "itsm" and is_alert and owned:
            route.add(name, f"alert on {owned[0].name}, {KIND_WORDS['ci']}")
        elif name == "knowledge":
            route.add(name, f"{inventory.knowledge_size} past incidents to compare with")
        elif cue and name != "knowledge" and (not entities or name == "itsm" or not owned):
            route.add(name, f"cue '{cue}'")
        if name == "logs" and alert and alert.get("source") == "elastic_watcher":
            route.add(name, "alert raised by an Elastic watcher")

    if embed is not None and available:
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

    if model.available and available:
        choice = _model_route(request, entities, list(available.values()), model)
        for picked in choice:
            if picked in available:
                route.add(cast(Specialist, picked), "chosen by the model")

    if not route.reasons and available:
        for name in available:
            route.add(name, "nothing specific named: broad sweep")

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


__all__ = ["extract_entities", "route_specialists"]
