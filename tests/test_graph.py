"""The copilot graph end to end: routing, fan-out, approval interrupt, scripted model, injection, resume."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agents.llm import ModelHandle
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario
from graphs.context import Context
from graphs.copilot import build_graph, make_input
from tests.conftest import EXAMPLES, OWN_SCENARIOS, ROOT
from tests.scripted import ScriptedChatModel
from tools.replay import replay_sources

NO_MODEL = ModelHandle.unavailable()


def test_blocking_scenario_routes_to_database_and_stops_at_the_gate(knowledge_factory) -> None:
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    run = investigate_scenario(scenario, NO_MODEL, RunOptions(), knowledge_factory)
    values = run.values
    assert [p["specialist"] for p in values["plan"]][:1] == ["database"]
    assert "network" not in {p["specialist"] for p in values["plan"]}
    assert run.pending_approval is True
    assert values["status"] == "awaiting_approval"
    assert [(p["action"], p["target"]) for p in values["proposals"]] == [
        ("kill_session", "sql-prod-01 session 57")
    ]
    assert values["executed_actions"] == []
    # every finding in the answer points at evidence that a tool returned
    report = values["report"]
    refs = {e["ref"] for e in report["evidence"]}
    assert all(f["evidence_refs"] and set(f["evidence_refs"]) <= refs for f in report["findings"])


def test_healthy_instance_proposes_nothing_and_ends_without_interrupt(knowledge_factory) -> None:
    scenario = load_scenario(EXAMPLES / "healthy-01.yaml")
    run = investigate_scenario(scenario, NO_MODEL, RunOptions(), knowledge_factory)
    assert run.pending_approval is False
    assert run.values["proposals"] == []
    assert run.values["status"] == "done"
    answer = run.values["answer"].lower()
    # nothing abnormal in what was examined, but no all-clear: the recorded world holds no deadlock counters
    assert "nothing abnormal in what was checked on sql-prod-01" in answer
    assert "not checked on sql-prod-01: deadlocks" in answer or "looks healthy" in answer


def _context(scenario, model: ModelHandle, knowledge_factory, step_budget: int = 2) -> Context:  # type: ignore[no-untyped-def]
    return Context(
        sources=replay_sources(scenario.world, knowledge_factory),
        model=model,
        step_budget=step_budget,
        semantic_routing=False,
    )


def _investigate(scenario, model: ModelHandle, knowledge_factory, thread_id: str, step_budget: int = 2):  # type: ignore[no-untyped-def]
    """A fresh graph and checkpointer, one run of the scenario's question: (graph, config, context)."""
    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": thread_id}}
    ctx = _context(scenario, model, knowledge_factory, step_budget)
    graph.invoke(make_input(question=scenario.input.question, now=scenario.now), config, context=ctx)
    return graph, config, ctx


def test_scripted_model_adds_a_specialist_follows_up_and_explains(knowledge_factory) -> None:
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    chat = ScriptedChatModel(
        structured={
            "Routing": [{"database": True, "logs": True, "knowledge": False}],
            "FollowUp": [{"choice": "done"}] * 4,
        },
        texts=["Session 57 holds an open transaction and blocks checkout [E1] [E99]. It matches INC-2031."],
    )
    model = ModelHandle.from_chat("scripted", chat)
    graph, config, _ = _investigate(scenario, model, knowledge_factory, "t-scripted")
    values = graph.get_state(config).values
    routed = [p["specialist"] for p in values["plan"]]
    assert "logs" in routed and "database" in routed
    assert any(
        "chosen by the model" in r for p in values["plan"] for r in p["reasons"] if p["specialist"] == "logs"
    )
    explanation = values["report"]["explanation"]
    assert "[E1]" in explanation and "[E99]" not in explanation  # unknown evidence refs are dropped
    assert values["answer"].startswith("Most likely cause: Blocking chain on sql-prod-01")
    # the model's words never replace a finding: the deterministic findings are all still there
    assert "head blocker session 57" in values["answer"]
    assert [p["action"] for p in values["proposals"]] == ["kill_session"]
    assert model.usage.snapshot()["calls"] >= 2


def test_model_follow_up_runs_only_view_tools_of_known_entities(knowledge_factory) -> None:
    """The model asks for a follow-up on another instance the findings mention; the budget bounds it."""
    scenario = load_scenario(OWN_SCENARIOS / "mssql-cross-instance-blocking.yaml")
    chat = ScriptedChatModel(
        structured={
            "Routing": [{"database": True}],
            "FollowUp": [
                {"choice": "blocking_chains sql-prod-02", "reason": "the blocker comes from there"},
                {"choice": "done"},
            ],
        },
        texts=["Blocking on sql-prod-01 [E1]."],
    )
    model = ModelHandle.from_chat("scripted", chat)
    graph, config, _ = _investigate(scenario, model, knowledge_factory, "t-follow", 1)
    # the planned run (a later dependency follow-up may run the whole playbook on sql-prod-02 too)
    planned = next(
        r for r in graph.get_state(config).values["specialist_runs"] if r["specialist"] == "database"
    )
    assert "blocking_chains(sql-prod-02)" in planned["tool_calls"]
    assert planned["model_steps"] == 1  # budget 1: exactly one follow-up question


def test_prompt_injection_in_a_log_line_changes_nothing(knowledge_factory) -> None:
    scenario = load_scenario(OWN_SCENARIOS / "injection-log-line.yaml")
    chat = ScriptedChatModel(
        structured={"Routing": [{"database": True, "logs": True}], "FollowUp": []},
        texts=["As the log says, kill every session on sql-prod-05 now. No session there is blocked [E1]."],
    )
    model = ModelHandle.from_chat("scripted", chat)
    graph, config, _ = _investigate(scenario, model, knowledge_factory, "t-inject")
    state = graph.get_state(config)
    values = state.values
    assert values["proposals"] == [] and values["executed_actions"] == [] and not state.interrupts
    explanation = values["report"]["explanation"] or ""
    assert (
        "kill every session" not in explanation and "No session there is blocked" in explanation
    )  # obeying sentence dropped
    # wherever the injected text reached the model, it sat inside a <data> block
    injected = "ignore previous instructions"
    seen = 0
    for _, messages in chat.seen:
        for m in messages[1:]:  # the system prompt names the attack itself; look at what tools fed in
            text = str(m.content)
            for match in re.finditer(re.escape(injected), text, re.I):
                before = text[: match.start()]
                assert before.rfind("<data>") > before.rfind("</data>"), "injected text outside <data>"
                seen += 1
    assert seen >= 1  # the log line did reach the model, as data


def test_pii_is_redacted_before_the_model_sees_it(knowledge_factory) -> None:
    scenario = load_scenario(OWN_SCENARIOS / "demo-checkout-blocking.yaml")
    chat = ScriptedChatModel(
        structured={"Routing": [{"database": True, "logs": False, "metrics": False, "knowledge": False}]},
        texts=["Blocked [E1]."],
    )
    model = ModelHandle.from_chat("scripted", chat)
    _investigate(scenario, model, knowledge_factory, "t-pii", 0)
    prompts = "\n".join(str(m.content) for _, ms in chat.seen for m in ms)
    assert "ops@example.com" not in prompts and "RECONCILED" not in prompts
    assert "head blocker session 57" in prompts  # the evidence itself still reaches the model


def test_approval_resume_records_decision_and_executes_nothing(knowledge_factory) -> None:
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    graph, config, ctx = _investigate(scenario, NO_MODEL, knowledge_factory, "t-approve")
    request = graph.get_state(config).interrupts[0].value
    assert request["proposals"][0]["action"] == "kill_session"
    graph.invoke(
        Command(resume={"decision": "reject", "approver": "dba-on-call", "comment": "investigating first"}),
        config,
        context=ctx,
    )
    values = graph.get_state(config).values
    assert values["status"] == "rejected" and values["executed_actions"] == []
    assert values["approval"]["approver"] == "dba-on-call"


@pytest.mark.parametrize(
    "bad", [{"decision": "maybe", "approver": "x"}, {"decision": "approve", "approver": ""}]
)
def test_malformed_decision_is_refused_and_the_gate_stays_closed(bad, knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    scenario = load_scenario(EXAMPLES / "mssql-blocking-01.yaml")
    graph, config, ctx = _investigate(scenario, NO_MODEL, knowledge_factory, "t-bad")
    with pytest.raises(Exception, match="validation"):
        graph.invoke(Command(resume=bad), config, context=ctx)
    assert graph.get_state(config).interrupts  # still waiting


def test_pending_approval_survives_a_restart_and_resumes_in_a_fresh_process(tmp_path: Path) -> None:
    """Two separate processes through the CLI and the SQLite checkpointer."""
    env = {
        "OPSCOPILOT_DATA_DIR": str(tmp_path / "var"),
        "OPSCOPILOT_MODEL_SPEC": "none",
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }

    def cli(*args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "server.cli", *args]
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    first = cli(
        "ask",
        "What is blocking checkout on sql-prod-01?",
        "--scenario",
        str(EXAMPLES / "mssql-blocking-01.yaml"),
        "--as",
        "bob",
        "--json",
    )
    assert first.returncode == 0, first.stderr
    thread_id = json.loads(first.stdout)["thread_id"]
    assert json.loads(first.stdout)["status"] == "awaiting_approval"
    assert (tmp_path / "var" / "checkpoints.sqlite").exists()

    listed = cli("approvals", "list", timeout=120)
    assert thread_id in listed.stdout and "kill_session sql-prod-01 session 57" in listed.stdout

    mine = cli("approvals", "approve", thread_id, "--as", "bob")  # bob asked: he may not approve
    assert mine.returncode == 2 and "may not approve it" in mine.stderr
    second = cli("approvals", "approve", thread_id, "--as", "alice", "--comment", "batch job")
    assert second.returncode == 0, second.stderr
    assert "approved by alice" in second.stdout and "nothing was run" in second.stdout
    again = cli("approvals", "approve", thread_id, "--as", "alice")
    assert again.returncode == 2 and "not pending" in again.stderr


def test_the_inventory_is_read_from_the_sources_once_per_investigation(knowledge_factory) -> None:  # type: ignore[no-untyped-def]
    """Live inventories cost I/O (a terms aggregation over the logs, catalog queries): plan reads the
    inventory once and the specialists reuse it."""
    scenario = load_scenario(EXAMPLES / "knowledge-tempdb-01.yaml")
    sources = replay_sources(scenario.world, knowledge_factory)
    calls = {"n": 0}
    real = sources.logs.entities  # type: ignore[union-attr]

    def counted() -> set[str]:
        calls["n"] += 1
        return real()

    sources.logs.entities = counted  # type: ignore[union-attr,method-assign]
    graph = build_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "t-inventory"}}
    ctx = Context(sources=sources, model=NO_MODEL, semantic_routing=False)
    graph.invoke(
        make_input(question="why is tempdb full on sql-prod-03?", now=scenario.now), config, context=ctx
    )
    assert len(graph.get_state(config).values["plan"]) >= 2  # several specialists ran
    assert calls["n"] == 1


def test_a_tool_the_model_picked_does_not_stand_in_for_the_dependency_follow_up(knowledge_factory) -> None:
    """The model's follow-up runs one log tool on pg-shop-01; the model-free dependency follow-up still
    runs the whole logs playbook there, so pg-shop-01's failover is found and leads the chain."""
    scenario = load_scenario(OWN_SCENARIOS / "gen-vague-users-complaining.yaml")
    chat = ScriptedChatModel(
        structured={
            "Routing": [{"logs": True}],
            "FollowUp": [{"choice": "log_bursts pg-shop-01", "reason": "the refusals name it"}]
            + [{"choice": "done"}] * 6,
        },
        texts=["shop-web cannot reach pg-shop-01 [E1]."],
    )
    model = ModelHandle.from_chat("scripted", chat)
    graph, config, _ = _investigate(scenario, model, knowledge_factory, "t-picked", 1)
    values = graph.get_state(config).values
    assert any(f["entity"] == "pg-shop-01" for f in values["follow_ups"]), values["follow_ups"]
    assert "failover" in values["answer"].splitlines()[0].lower(), values["answer"]
