"""Per-run context read through Runtime[Context]: sources, model, clock and budgets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from agents.knowledge import hypothetical_incident
from agents.llm import ModelHandle
from tools.sources import Sources, ToolContext

if TYPE_CHECKING:
    from graphs.remediation import ActionRuntime

CHANGE_LEAD = timedelta(hours=24)  # "did anything change?": changes up to a day before the window count


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
    knowledge_hyde: bool = False  # with a model, search with a hypothetical incident too (HyDE)
    semantic_routing: bool = True
    actions: ActionRuntime | None = None  # policy, audit, executors; None = approvals run nothing
    extra: dict[str, object] = field(default_factory=dict)

    def tool_context(self, now: datetime, scope: dict[str, Any] | None = None) -> ToolContext:
        """The tools' view of this run: the request's window (graphs/request.py) when the planner
        resolved one, else the default look-back before now; baselines come from before the window."""
        from graphs.request import RequestScope

        start, end = now - timedelta(minutes=self.lookback_minutes), now
        terms: list[str] = []
        intent: list[str] = []
        label = ""
        if scope:
            understood = RequestScope.model_validate(scope)
            start, end = understood.window.start, understood.window.end
            terms, intent, label = understood.term_texts, list(understood.intent), understood.window.label()
        return ToolContext(
            sources=self.sources,
            now=now,
            start=start,
            end=end,
            history_start=min(now, start + timedelta(minutes=self.lookback_minutes))
            - timedelta(days=self.history_days),
            options=self._tool_options(),
            terms=terms,
            intent=intent,
            window_label=label,
            lead_start=start - CHANGE_LEAD if "what_changed" in intent else None,
        )

    def _tool_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "knowledge_min_score": self.knowledge_min_score,
            "knowledge_top_k": self.knowledge_top_k,
            **dict(self.extra.get("tool_options") or {}),  # type: ignore[call-overload]
        }
        if self.knowledge_hyde and self.model.available:
            options["knowledge_hypothesis"] = partial(hypothetical_incident, self.model)
        return options
