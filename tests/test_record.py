"""`record`: what the tools read becomes a scenario that replays to the same findings."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from agents.llm import ModelHandle
from evals.loader import load_scenario, load_scenarios
from evals.record import Recorder, build_scenario, recording_sources, write_scenario
from evals.runner import RunOptions, run_scenario
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from tests.conftest import EXAMPLES, OWN_SCENARIOS
from tools.replay import replay_sources

NO_MODEL = ModelHandle.unavailable()


def _record(scenario, knowledge_factory, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    rec = Recorder()
    sources = recording_sources(replay_sources(scenario.world, knowledge_factory), rec)
    graph = build_graph(InMemorySaver())
    cfg = {"configurable": {"thread_id": f"rec-{scenario.id}"}}
    alert = scenario.input.alert
    graph_input = make_input(
        question=scenario.input.question,
        alert_source=alert.source if alert else None,
        alert_payload=alert.payload if alert else None,
        now=scenario.now,
    )
    graph.invoke(graph_input, cfg, context=Context(sources=sources, model=NO_MODEL, semantic_routing=True))
    values = dict(graph.get_state(cfg).values)
    doc = build_scenario(
        scenario_id=f"rec-{scenario.id}",
        title=scenario.title,
        now=scenario.now,
        question=scenario.input.question,
        alert=alert.model_dump() if alert else None,
        world=rec.world(),
        values=values,
    )
    out = tmp_path / f"rec-{scenario.id}.yaml"
    write_scenario(out, doc)
    return out


@pytest.mark.parametrize(
    "path",
    [*sorted(EXAMPLES.glob("*.yaml")), OWN_SCENARIOS / "demo-checkout-blocking.yaml"],
    ids=lambda p: p.stem,
)
def test_recorded_scenario_replays_to_the_same_findings(
    path: Path, tmp_path: Path, knowledge_factory
) -> None:  # type: ignore[no-untyped-def]
    original = load_scenario(path)
    out = _record(original, knowledge_factory, tmp_path)
    recorded = load_scenario(out)
    assert recorded.expect.route  # the live run's route is the expectation
    result = run_scenario(recorded, NO_MODEL, RunOptions(), knowledge_factory)
    assert result.passed, result.problems
    # and the original expectations still hold on the recorded world
    original_on_recording = original.model_copy(update={"world": recorded.world})
    assert run_scenario(original_on_recording, NO_MODEL, RunOptions(), knowledge_factory).passed


def test_recording_redacts_sql_literals_and_pii(tmp_path: Path, knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    out = _record(load_scenario(OWN_SCENARIOS / "demo-checkout-blocking.yaml"), knowledge_factory, tmp_path)
    text = out.read_text()
    assert "ops@example.com" not in text and "'RECONCILED'" not in text
    assert "UPDATE dbo.Orders SET Status = ?" in text
    assert len(load_scenarios([out])) == 1
