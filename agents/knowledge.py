"""Knowledge specialist: past incidents similar to this one, and what fixed them."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from agents.llm import ModelHandle
from agents.prompting import render_messages
from tools.inventory import Entity, Inventory
from tools.knowledge.views import KNOWLEDGE_TOOLS
from tools.redact import redact_text
from tools.sources import ToolContext

HYDE_MAX_CHARS = 600


def hypothetical_incident(model: ModelHandle, query: str) -> str | None:
    """HyDE: a model-written past incident that would match `query`, embedded beside the query to
    find incidents phrased differently. Only ever a search query; None without a model."""
    if not model.available:
        return None
    text = model.text(render_messages("knowledge_hyde.jinja2", query=redact_text(query)))
    if not text or not text.strip():
        return None
    return text.strip()[:HYDE_MAX_CHARS]


def plan_calls(
    entities: list[Entity], inventory: Inventory, question: str, ctx: ToolContext
) -> list[ToolCall]:
    names = [e.name for e in entities]
    query = question if not names else f"{question} (entities: {', '.join(names)})"
    args = {
        "query": query,
        "min_score": float(ctx.options.get("knowledge_min_score", 0.35)),
        "k": int(ctx.options.get("knowledge_top_k", 3)),
    }
    return [
        ToolCall(tool=t.spec.name, entity=names[0] if names else "estate", args=args) for t in KNOWLEDGE_TOOLS
    ]


SPEC = AgentSpec(
    name="knowledge",
    description=(
        "Retrieval over past incidents and runbooks: has this happened before, what was the root "
        "cause and what fixed it."
    ),
    keywords=("before", "again", "seen", "history", "past", "runbook", "similar", "last time", "previous"),
    entity_kinds=(),
    tools=tuple(KNOWLEDGE_TOOLS),
    plan_calls=plan_calls,
)
