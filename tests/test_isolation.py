"""Error isolation: one source down leaves the others routed and reported; notes are per run."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ValidationError

from agents.events import ToolFinished
from agents.llm import ModelHandle
from evals.loader import load_scenario
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from graphs.events import PlanMade
from tests.conftest import OWN_SCENARIOS
from tools.inventory import build_inventory
from tools.isolation import collecting_notes, gather, note
from tools.replay import replay_sources
from tools.sources import SourceError, Sources

KINDS = ("sql", "logs", "metrics", "snmp", "itsm", "knowledge")
SPECIALIST = {"sql": "database", "logs": "logs", "metrics": "metrics", "snmp": "network", "itsm": "itsm",
              "knowledge": "knowledge"}  # fmt: skip


class Down:
    """A backend whose every call fails like an unreachable server."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        def fail(*_a: Any, **_k: Any) -> Any:
            raise SourceError(f"{self.name} is down (connection refused)")

        return fail


def _all_sources(knowledge_factory: Any) -> tuple[Any, Sources]:
    """A world with data in every source: merge a few of our scenarios' worlds."""
    scenario = load_scenario(OWN_SCENARIOS / "demo-checkout-blocking.yaml")
    sources = replay_sources(scenario.world, knowledge_factory)
    for name in ("network-interface-down-alertmanager.yaml",):
        other = replay_sources(load_scenario(OWN_SCENARIOS / name).world, None)
        sources.snmp = sources.snmp or other.snmp
    return scenario, sources


@pytest.mark.parametrize("down", KINDS)
def test_each_source_down_in_turn_leaves_the_others_routed_and_reported(
    down: str, knowledge_factory: Any
) -> None:
    scenario, sources = _all_sources(knowledge_factory)
    present = [k for k in KINDS if getattr(sources, k) is not None]
    assert down in present or down in ("itsm",), f"the test world has no {down} source"
    baseline = build_inventory(sources)
    setattr(sources, down, Down(down))
    with collecting_notes() as notes:
        inv = build_inventory(sources)
    assert any(down.upper() in n.upper() or down in n for n in notes), notes
    for other in present:
        if other == down:
            continue
        kind = {"sql": "sql_instance", "logs": "log_entity", "metrics": "metric_entity", "snmp": "device",
                "itsm": "ci", "knowledge": "kb_service"}[other]  # fmt: skip
        assert inv.of_kind(kind) == baseline.of_kind(kind), other

    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": f"down-{down}"}}
    ctx = Context(sources=sources, model=ModelHandle.unavailable(), semantic_routing=False)
    question = "Why is checkout timing out on sql-prod-01? Check the logs, metrics and the network too."
    graph.invoke(make_input(question=question, now=scenario.now), config, context=ctx)
    values = graph.get_state(config).values
    routed = {p["specialist"] for p in values["plan"]}
    if down != "sql":
        assert "database" in routed  # the SQL instance is still known and examined
        assert "head blocker session 57" in values["answer"]
    assert any(down in n or down.upper() in n for n in values["report"]["notes"]), values["report"]["notes"]


def test_notes_do_not_leak_from_one_run_into_the_next(knowledge_factory: Any) -> None:
    scenario, sources = _all_sources(knowledge_factory)
    healthy_metrics = sources.metrics
    sources.metrics = Down("metrics")
    graph = build_graph(InMemorySaver())
    ctx = Context(sources=sources, model=ModelHandle.unavailable(), semantic_routing=False)
    first = {"configurable": {"thread_id": "first"}}
    graph.invoke(make_input(question="is sql-prod-01 ok?", now=scenario.now), first, context=ctx)
    assert any("metrics" in n for n in graph.get_state(first).values["report"]["notes"])
    sources.metrics = healthy_metrics  # the same long-lived Sources object, now healthy
    second = {"configurable": {"thread_id": "second"}}
    graph.invoke(make_input(question="is sql-prod-01 ok?", now=scenario.now), second, context=ctx)
    assert not any("could not be read" in n for n in graph.get_state(second).values["report"]["notes"])


def test_gather_keeps_answers_and_notes_failures_only_when_some_answered() -> None:
    def boom() -> list[int]:
        raise SourceError("refused")

    with collecting_notes() as notes:
        got = gather([("a", lambda: [1]), ("b", boom)], "things", note_for=lambda n, r: f"{n}: {r}")
        none = gather([("b", boom)], "things", note_for=lambda n, r: f"{n}: {r}")
    assert got.values == [[1]] and got.failures == {"b": "refused"} and notes == ["b: refused"]
    assert none.all_failed
    note("outside")  # outside collecting_notes: dropped, never global


def test_events_are_typed_and_a_misspelt_field_cannot_get_out() -> None:
    with pytest.raises(ValidationError):
        ToolFinished(specialist="database", tool="t", entity="e", seconds=1.0, findngs=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        PlanMade(entities=[], specialists=[], extra="x")  # type: ignore[call-arg]
    assert ToolFinished(specialist="d", tool="t", entity="e", seconds=0.1, findings=1).event == "tool_end"
