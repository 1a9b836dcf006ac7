"""Per-run context read through Runtime[Context]: sources, model, clock and budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from agents.llm import ModelHandle
from tools.sources import Sources, ToolContext

if TYPE_CHECKING:
    from graphs.remediation import ActionRuntime


@dataclass
class Context:
    """What one investigation runs against. Not checkpointed: rebuilt on resume."""

    sources: Sources
    model: ModelHandle
    lookback_minutes: int = 360
    history_days: int = 7
    step_budget: int = 2
    knowledge_min_score: float = 0.35
    knowledge_top_k: int = 3
    semantic_routing: bool = True
    actions: ActionRuntime | None = None  # policy, audit, executors; None = approvals run nothing
    extra: dict[str, object] = field(default_factory=dict)

    def tool_context(self, now: datetime) -> ToolContext:
        return ToolContext(
            sources=self.sources,
            now=now,
            start=now - timedelta(minutes=self.lookback_minutes),
            end=now,
            history_start=now - timedelta(days=self.history_days),
            options={
                "knowledge_min_score": self.knowledge_min_score,
                "knowledge_top_k": self.knowledge_top_k,
            },
        )
