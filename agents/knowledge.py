"""Knowledge specialist: past incidents similar to this one, and what fixed them."""

from __future__ import annotations

from agents.base import AgentSpec, ToolCall
from tools.inventory import Entity, Inventory
from tools.knowledge.views import KNOWLEDGE_TOOLS
from tools.sources import ToolContext


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
