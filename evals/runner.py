"""Run the real copilot graph on scenarios, every tool answering from the scenario's world."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from agents.llm import ModelHandle
from evals.loader import Scenario
from evals.scoring import ScenarioScore, score
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from tools.replay import KnowledgeFactory, replay_sources


@dataclass
class RunOptions:
    lookback_minutes: int = 360
    history_days: int = 7
    step_budget: int = 2
    knowledge_min_score: float = 0.35
    knowledge_top_k: int = 3
    semantic_routing: bool = True


@dataclass
class ScenarioRun:
    """One investigation of one scenario: the final state and whether it stopped at the gate."""

    values: dict[str, Any]
    pending_approval: bool
    thread_id: str
    wall_s: float


def investigate_scenario(
    scenario: Scenario,
    model: ModelHandle,
    options: RunOptions,
    knowledge_factory: KnowledgeFactory | None,
    graph: Any | None = None,
) -> ScenarioRun:
    started = time.perf_counter()  # includes building the sources (indexing past incidents)
    graph = graph or build_graph(InMemorySaver())
    sources = replay_sources(scenario.world, knowledge_factory, label=f"scenario {scenario.id}")
    context = Context(
        sources=sources,
        model=model,
        lookback_minutes=options.lookback_minutes,
        history_days=options.history_days,
        step_budget=options.step_budget,
        knowledge_min_score=options.knowledge_min_score,
        knowledge_top_k=options.knowledge_top_k,
        semantic_routing=options.semantic_routing,
    )
    alert = scenario.input.alert
    graph_input = make_input(
        question=scenario.input.question,
        alert_source=alert.source if alert else None,
        alert_payload=alert.payload if alert else None,
        now=scenario.now,
        source_ref=f"scenario:{scenario.id}",
    )
    thread_id = f"eval-{scenario.id}-{uuid.uuid4().hex[:8]}"
    config = {"configurable": {"thread_id": thread_id}}
    graph.invoke(graph_input, config, context=context)
    wall = time.perf_counter() - started
    snapshot = graph.get_state(config)
    return ScenarioRun(
        values=dict(snapshot.values),
        pending_approval=bool(snapshot.interrupts),
        thread_id=thread_id,
        wall_s=wall,
    )


def run_scenario(
    scenario: Scenario, model: ModelHandle, options: RunOptions, knowledge_factory: KnowledgeFactory | None
) -> ScenarioScore:
    before = model.usage.snapshot()
    run = investigate_scenario(scenario, model, options, knowledge_factory)
    values = run.values
    report = values.get("report") or {}
    result = score(
        scenario,
        route=[p["specialist"] for p in values.get("plan", [])],
        answer=values.get("answer", ""),
        proposals=values.get("proposals", []),
        citations=[c["incident_id"] for c in report.get("citations", [])],
        pending_approval=run.pending_approval,
        executed_actions=values.get("executed_actions", []),
    )
    result.wall_s = round(run.wall_s, 3)
    after = model.usage.snapshot()
    result.model_calls = after["calls"] - before["calls"]
    result.tokens = sum(after[k] - before[k] for k in ("prompt_tokens", "completion_tokens"))
    result.explanation_sentences = int(report.get("explanation_sentences") or 0)
    result.explanation_dropped = int(report.get("explanation_dropped") or 0)
    return result


def run_all(
    scenarios: list[Scenario],
    model: ModelHandle,
    options: RunOptions,
    knowledge_factory: KnowledgeFactory | None,
    on_result: Callable[[ScenarioScore], None] | None = None,
) -> list[ScenarioScore]:
    results = []
    for scenario in scenarios:
        res = run_scenario(scenario, model, options, knowledge_factory)
        results.append(res)
        if on_result:
            on_result(res)
    return results
