"""Issue 7's questions on replayed worlds (no model): no all-clear without looking, no swapped names, and
what was not seen said next to the headline."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agents.base import playbook_over
from agents.llm import ModelHandle
from agents.registry import REGISTRY
from evals.loader import Scenario, load_scenario
from evals.runner import RunOptions, investigate_scenario
from graphs.coverage import Coverage, Gap, coverage_from_state
from graphs.planner import _has_cue
from graphs.synthesize import build_report
from tests.conftest import EXAMPLES, OWN_SCENARIOS
from tools.base import Evidence, Finding, Severity, ToolResult, view_tool
from tools.common import finding_on, read_evidence
from tools.sources import ToolContext

NO_MODEL = ModelHandle.unavailable()
LOG = logging.getLogger(__name__)
DEMO = OWN_SCENARIOS / "demo-checkout-blocking.yaml"
ALL_CLEAR = re.compile(r"looks healthy|no issues found", re.I)


def ask(path: Path, question: str, knowledge_factory: Any) -> dict[str, Any]:
    """The scenario's world, asked `question` instead of its own, as a new user would (no model)."""
    scenario = load_scenario(path)
    asked = Scenario.model_validate(
        scenario.model_dump() | {"kind": "question", "input": {"question": question}}
    )
    return investigate_scenario(asked, NO_MODEL, RunOptions(), knowledge_factory).values


def headline_block(values: dict[str, Any]) -> str:
    """The headline and the lines said next to it (up to the first blank line)."""
    return values["answer"].split("\n\n", 1)[0]


def examined(values: dict[str, Any]) -> set[str]:
    return {e["entity"] for e in values["evidence"] if e["specialist"] != "knowledge"}


@pytest.mark.parametrize("question", ["is the db ok?", "anything wrong?", "sqlprod01 is hanging, pls help"])
def test_vague_questions_sweep_and_name_the_blocker(question: str, knowledge_factory: Any) -> None:
    values = ask(DEMO, question, knowledge_factory)
    assert "database" in {p["specialist"] for p in values["plan"]}
    top = headline_block(values)
    assert "head blocker session 57" in top.splitlines()[0]
    assert not ALL_CLEAR.search(values["answer"])
    # long-running statements are read from the sessions (checked); what the recorded world cannot show
    # (deadlock counters, log reuse, replication) is said to be not checked
    assert re.search(r"not checked on sql-prod-01: .*deadlocks", top, re.I), top


@pytest.mark.parametrize("question", ["is the db slow?", "are the DBs ok", "any long-running queries?"])
def test_db_is_understood_as_database(question: str) -> None:
    assert _has_cue(REGISTRY["database"], question.lower())


def test_a_follow_up_without_a_thread_says_so_and_still_looks(knowledge_factory: Any) -> None:
    values = ask(DEMO, "what should I do about it?", knowledge_factory)
    top = headline_block(values)
    assert "no earlier investigation to refer to" in top
    assert "head blocker session 57" in top
    assert not ALL_CLEAR.search(values["answer"])


@pytest.mark.parametrize(
    ("path", "question", "unknown", "known"),
    [
        (DEMO, "is sql-prod-02 ok?", "sql-prod-02", "sql-prod-01"),
        (EXAMPLES / "pg-regression-01.yaml", "is pg-payments-07 healthy?", "pg-payments-07", "pg-orders-01"),
    ],
)
def test_an_unknown_name_is_reported_never_swapped(
    path: Path, question: str, unknown: str, known: str, knowledge_factory: Any
) -> None:
    values = ask(path, question, knowledge_factory)
    first = values["answer"].splitlines()[0]
    assert first.startswith(f"{unknown} is not a known instance; known: {known}")
    assert known not in examined(values)  # nothing else was examined in its place
    assert not [f for f in values["findings"] if f["entity"] == known]
    assert not ALL_CLEAR.search(values["answer"])


@pytest.mark.parametrize(
    ("path", "said", "known"),
    [
        (DEMO, "sql_prod_01", "sql-prod-01"),
        (DEMO, "sqlprod01", "sql-prod-01"),
        (DEMO, "SQL-PROD-01", "sql-prod-01"),
        (OWN_SCENARIOS / "healthy-postgres-instance.yaml", "pg-inventory-1", "pg-inventory-01"),
    ],
)
def test_near_miss_names_are_matched_and_said(
    path: Path, said: str, known: str, knowledge_factory: Any
) -> None:
    values = ask(path, f"is {said} ok?", knowledge_factory)
    assert known in examined(values)
    if said.lower() != known:
        assert f"{said} → {known}" in headline_block(values)


def test_a_service_reaches_the_database_it_runs_on(knowledge_factory: Any) -> None:
    values = ask(DEMO, "checkout is slow", knowledge_factory)
    top = headline_block(values)
    assert "sql-prod-01" in examined(values)
    assert "head blocker session 57" in top.splitlines()[0]
    assert "checkout runs on sql-prod-01 (named together in past incident INC-2031)" in top


def test_a_service_word_finds_the_overlapping_change(knowledge_factory: Any) -> None:
    values = ask(EXAMPLES / "itsm-change-01.yaml", "payments are slow", knowledge_factory)
    assert "itsm" in {p["specialist"] for p in values["plan"]}
    assert "CHG0040123" in values["answer"]
    assert "payments → payments-api, payments-db" in headline_block(values)


def test_the_disk_answer_does_not_call_a_98_percent_file_not_near_full(knowledge_factory: Any) -> None:
    values = ask(EXAMPLES / "disk-forecast-01.yaml", "is db-host-02 running out of space?", knowledge_factory)
    assert "No database file on db-host-02 is near full" not in values["answer"]
    assert "Telemetry_data 98% used" in values["answer"]


def test_long_running_statements_are_listed_or_said_not_checked(knowledge_factory: Any) -> None:
    values = ask(DEMO, "are there long-running queries on sql-prod-01?", knowledge_factory)
    top = headline_block(values)
    listed = any(
        "long-running" in f["title"].lower() or "running for" in f["title"] for f in values["findings"]
    )
    assert listed or re.search(r"long-running statements on sql-prod-01: not checked", top, re.I), top
    assert not ALL_CLEAR.search(values["answer"])


def test_deadlocks_without_a_log_source_say_so(knowledge_factory: Any) -> None:
    path = OWN_SCENARIOS / "healthy-postgres-instance.yaml"
    values = ask(path, "were there deadlocks on pg-inventory-01?", knowledge_factory)
    top = headline_block(values)
    assert "no log source configured" in top
    assert not ALL_CLEAR.search(values["answer"])


def test_a_health_question_names_what_was_checked_and_what_was_not(knowledge_factory: Any) -> None:
    values = ask(
        OWN_SCENARIOS / "healthy-postgres-instance.yaml", "Is pg-inventory-01 healthy?", knowledge_factory
    )
    first, *rest = headline_block(values).splitlines()
    assert first.startswith("Nothing abnormal in what was checked on pg-inventory-01 (database: blocking")
    assert "not an all-clear" in first
    assert "long-running statements" in first  # checked, and named as checked
    assert any(line.startswith("Not checked on pg-inventory-01: deadlocks") for line in rest), rest
    assert values["report"]["checked"]["pg-inventory-01"]["database"][:1] == ["blocking"]


@pytest.mark.parametrize(
    ("scenario", "unread", "named"),
    [
        ("mssql-unreachable-instance-next-to-blocking", "sql-prod-21", "head blocker session 81"),
        ("pg-unreachable-replica-next-to-idle-blocker", "pg-ledger-02", "head blocker session 4410"),
        ("mysql-unreachable-shard-next-to-regression", "mysql-cart-02", "Regressed query on mysql-cart-01"),
    ],
)
def test_an_unreadable_instance_is_said_next_to_the_problem_on_another(
    scenario: str, unread: str, named: str, knowledge_factory: Any
) -> None:
    path = OWN_SCENARIOS / f"{scenario}.yaml"
    s = load_scenario(path)
    values = investigate_scenario(s, NO_MODEL, RunOptions(), knowledge_factory).values
    first, *rest = headline_block(values).splitlines()
    assert named in first
    assert any(line.startswith(f"Could not read {unread} (") and "state is unknown" in line for line in rest)
    assert not ALL_CLEAR.search(values["answer"])


# --- a new view tool is picked up purely from what it declares it detects -------------------------


@view_tool("database", detects=("long_running",))
def running_statements(ctx: ToolContext, entity: str) -> ToolResult:
    """Active statements running for 30 s or more (a stand-in for the database issue's tool)."""

    def read() -> list[Any]:
        assert ctx.sources.sql is not None
        return ctx.sources.sql.sessions(entity)

    ev, rows = read_evidence(
        "database",
        "running_statements",
        entity,
        read,
        log=LOG,
        doing="reading sessions",
        failed="Could not read",
    )
    long = [r for r in rows or [] if (r.elapsed_ms or 0) >= 30_000 and r.status in ("running", "suspended")]
    ev.summary = f"{len(long)} statements running for 30 s or more on {entity}"
    findings = [
        finding_on(
            ev,
            "long_running",
            Severity.INFO,
            f"Session {r.session_id} running for {r.elapsed_ms / 1000:.0f} s",
            "",
        )
        for r in long
    ]
    return ToolResult(evidence=[ev], findings=findings)


def test_coverage_follows_the_tools_detects(knowledge_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = REGISTRY["database"]
    tools = [*spec.tools, running_statements]
    extended = replace(spec, tools=tuple(tools), plan_calls=playbook_over("sql_instance", tools, 3))
    monkeypatch.setitem(REGISTRY, "database", extended)
    values = ask(DEMO, "are there long-running queries on sql-prod-01?", knowledge_factory)
    assert "long_running" in values["report"]["checked"]["sql-prod-01"]["database"]
    assert "long-running statements" not in headline_block(values).lower().split("not checked", 1)[-1]
    assert "Session 88 running for 61 s" in values["answer"]


def test_a_sweep_of_a_large_estate_says_what_it_left_out(knowledge_factory: Any) -> None:
    session = {"session_id": 1, "status": "running", "blocking_session_id": 0, "elapsed_ms": 10}
    world = {"sql": {f"sql-prod-{i:02d}": {"engine": "mssql", "sessions": [session]} for i in range(1, 7)}}
    scenario = Scenario.model_validate(
        {"id": "large", "title": "t", "kind": "question", "now": "2026-01-01T00:00:00Z", "world": world,
         "input": {"question": "is the db ok?"}}
    )  # fmt: skip
    values = investigate_scenario(scenario, NO_MODEL, RunOptions(), knowledge_factory).values
    top = headline_block(values)
    assert examined(values) == {"sql-prod-01", "sql-prod-02", "sql-prod-03"}
    assert "Not examined by database: sql-prod-04, sql-prod-05, sql-prod-06" in top
    assert "Nothing specific was named, so every source with data was swept." in top
    assert not ALL_CLEAR.search(values["answer"])


# --- a question about one concern is answered by what the tools for it found ----------------------


def test_a_long_running_question_names_the_longest_statement_even_below_the_threshold(
    knowledge_factory: Any,
) -> None:
    """Nothing has run 60 s, so nothing is a problem; the answer still names what runs longest now
    rather than a bare "no issues found" (issue 7, asked as a DBA would)."""
    values = ask(
        OWN_SCENARIOS / "healthy-postgres-instance.yaml",
        "are there long-running queries on pg-inventory-01?",
        knowledge_factory,
    )
    first = headline_block(values).splitlines()[0]
    assert first.startswith(
        "No long-running statements on pg-inventory-01 (longest running now: session 61240"
    )
    assert "Nothing else abnormal in what was checked" in first
    assert not ALL_CLEAR.search(values["answer"])


def _deadlock_report(deadlock_severity: Severity) -> Any:
    ev = Evidence(id="deadlocks@pg-1", specialist="database", tool="deadlocks", entity="pg-1", summary="s")
    other = Evidence(
        id="blocking_chains@pg-1", specialist="database", tool="blocking_chains", entity="pg-1", summary="s"
    )
    findings = [
        Finding(
            specialist="database",
            entity="pg-1",
            kind="deadlocks",
            severity=deadlock_severity,
            title="Deadlocks on pg-1: 3 since the server started; no earlier sample to compare",
            evidence=[ev.id],
        ),
        Finding(
            specialist="database",
            entity="pg-1",
            kind="no_blocking",
            severity=Severity.INFO,
            title="No blocking on pg-1",
            evidence=[other.id],
        ),
    ]
    coverage = Coverage(
        checked={"pg-1": {"database": ["blocking", "deadlocks"]}},
        asked=["deadlocks"],
        targets=["pg-1"],
        partial=[
            Gap(
                entity="pg-1",
                concerns=["deadlocks"],
                reason="checked by database only; not by logs: no log source configured",
            )
        ],
    )
    return build_report(
        "were there deadlocks on pg-1?",
        "none",
        ["pg-1"],
        ["database"],
        [ev, other],
        findings,
        [],
        coverage=coverage,
    )


def test_a_deadlock_question_leads_with_the_deadlock_reading_and_says_the_log_was_not_read() -> None:
    report = _deadlock_report(Severity.INFO)
    assert report.headline.startswith("Deadlocks on pg-1: 3 since the server started")
    assert "No blocking" not in report.headline  # only the asked concern's findings lead
    assert not ALL_CLEAR.search(report.headline)
    assert (
        "Deadlocks on pg-1: checked by database only; not by logs: no log source configured."
        in report.coverage
    )


def test_the_partial_coverage_line_is_left_out_when_the_source_that_looked_found_the_problem() -> None:
    report = _deadlock_report(Severity.WARNING)
    assert report.headline.startswith("Most likely cause: Deadlocks on pg-1")
    assert not any("no log source configured" in line for line in report.coverage)


def test_coverage_names_the_missing_source_for_an_asked_concern_another_source_checked(
    knowledge_factory: Any,
) -> None:
    values = ask(
        OWN_SCENARIOS / "mysql-deadlocks-since-last-sample.yaml",
        "were there deadlocks on mysql-shop-01?",
        knowledge_factory,
    )
    _, cov = coverage_from_state(values)
    assert isinstance(cov, Coverage)
    assert any(
        g.entity == "mysql-shop-01" and g.concerns == ["deadlocks"] and "no log source configured" in g.reason
        for g in cov.partial
    ), cov.partial
