"""Causal chains across specialists (graphs/correlate.py) and model-free dependency follow-ups, end to end
on replayed scenarios and on hand-made findings."""

from __future__ import annotations

from datetime import UTC, datetime

from agents.base import dependency_follow_ups
from agents.llm import ModelHandle
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario
from graphs.correlate import correlate, key
from tests.conftest import OWN_SCENARIOS, ROOT
from tools.base import Finding, Severity
from tools.inventory import Inventory

NO_MODEL = ModelHandle.unavailable()
OPTIONS = RunOptions(semantic_routing=False)
NOW = datetime(2026, 3, 4, 10, 15, tzinfo=UTC)


def _run(path, knowledge_factory=None):  # type: ignore[no-untyped-def]
    return investigate_scenario(load_scenario(path), NO_MODEL, OPTIONS, knowledge_factory).values


def test_demo_headline_is_the_blocking_chain_and_the_update_its_symptom(knowledge_factory) -> None:
    values = _run(OWN_SCENARIOS / "demo-checkout-blocking.yaml", knowledge_factory)
    headline = values["answer"].splitlines()[0]
    assert headline.startswith("Most likely cause: Blocking chain on sql-prod-01: head blocker session 57")
    findings = {f["kind"]: f for f in values["report"]["findings"]}
    blocking, regressed = findings["blocking_chain"], findings["regressed_query"]
    assert blocking["role"] == "root cause"
    assert regressed["role"] == f"symptom of {blocking['number']}"  # never a second cause
    chain = "\n".join(values["report"]["chain"])
    assert "waiting on session 57's locks (blocked sessions 88, 102)" in chain
    assert "Independent" not in chain
    # the follow-ups went to the blocked sessions' clients (logs), with reasons; the service's metrics were
    # read either by the plan (checkout runs on sql-prod-01) or by a follow-up
    follow = {(f["specialist"], f["entity"]) for f in values["follow_ups"]}
    assert {("logs", "web-11"), ("logs", "web-12")} <= follow
    consulted = {(e["specialist"], e["entity"]) for e in values["evidence"]}
    assert ("metrics", "checkout") in consulted
    assert all(f["reason"] for f in values["follow_ups"])


def test_dependency_chain_across_specialists_names_the_root_there() -> None:
    values = _run(OWN_SCENARIOS / "gen-dep-search-frontend-upstream.yaml")
    assert [p["specialist"] for p in values["plan"]] == ["logs", "metrics"]  # metrics only by the follow-up
    (follow,) = values["follow_ups"]
    assert (follow["specialist"], follow["entity"]) == (
        "metrics",
        "search-api",
    ) and "search-api:8080" in follow["reason"]
    assert "search-api" in values["answer"].splitlines()[0]
    roles = {f["kind"]: f["role"] for f in values["report"]["findings"] if f["specialist"] == "logs"}
    assert roles["dependency_failure"].startswith("symptom of")


def test_address_alias_leads_the_follow_up_to_the_instance() -> None:
    inv = Inventory(names={"cart-api": {"log_entity"}, "mysql-cart-01": {"sql_instance", "metric_entity"}})
    inv.add_address("10.0.4.21:3306", "mysql-cart-01")
    assert inv.resolve_address("10.0.4.21:3306") == "mysql-cart-01"
    assert inv.resolve_address("10.0.4.21") == "mysql-cart-01"
    assert inv.resolve_address("mysql-cart-01:3306") == "mysql-cart-01"
    assert Inventory.from_json(inv.to_json()).addresses == {"10.0.4.21:3306": "mysql-cart-01"}
    failure = Finding(
        specialist="logs",
        entity="cart-api",
        kind="dependency_failure",
        severity=Severity.WARNING,
        title="cart-api → 10.0.4.21:3306: 12 lines of timeout",
        data={"peer": "10.0.4.21:3306", "peer_host": "10.0.4.21"},
    )
    follow = dependency_follow_ups([failure], inv, {("logs", "cart-api")}, {"logs", "database", "metrics"})
    assert [(f.specialist, f.entity) for f in follow] == [
        ("database", "mysql-cart-01"),
        ("metrics", "mysql-cart-01"),
    ]
    assert "depends on 10.0.4.21:3306" in follow[0].reason
    # nothing for info findings, nothing already looked at, nothing past the bound
    assert (
        dependency_follow_ups(
            [failure.model_copy(update={"severity": Severity.INFO})], inv, set(), {"database"}
        )
        == []
    )
    assert dependency_follow_ups([failure], inv, {("database", "mysql-cart-01")}, {"database"}) == []
    assert len(dependency_follow_ups([failure], inv, set(), {"logs", "database", "metrics"}, limit=1)) == 1


def _f(kind: str, entity: str, severity: Severity = Severity.WARNING, title: str = "", **data) -> Finding:  # type: ignore[no-untyped-def]
    return Finding(
        specialist="logs",
        entity=entity,
        kind=kind,
        severity=severity,
        title=title or f"{kind} on {entity}",
        data=data,
    )


def test_change_before_errors_is_the_root_and_an_unrelated_fault_stays_independent() -> None:
    change = _f(
        "log_precursor",
        "api-1",
        title="What changed: configuration reload",
        at="2026-03-04T10:00:00Z",
        change="configuration reload",
        message="Reloaded configuration",
    )
    errors = _f(
        "error_signature",
        "api-1",
        title="error on api-1: upstream refused",
        first_seen="2026-03-04T10:02:00Z",
    )
    disk = _f("days_until_full", "web-9", Severity.CRITICAL, title="web-9 disk full in 2 hours")
    corr = correlate([disk, errors, change], lambda _: None, NOW)
    assert corr.root == key(change)
    assert corr.role(key(errors)) == "symptom" and corr.role(key(disk)) == "independent"


def test_effects_never_precede_their_cause() -> None:
    change = _f("log_precursor", "api-1", at="2026-03-04T10:05:00Z", change="deploy", message="Deployed 2.1")
    errors = _f("error_signature", "api-1", first_seen="2026-03-04T09:00:00Z")
    assert correlate([change, errors], lambda _: None, NOW).root is None


def test_pool_exhaustion_explains_request_errors_and_a_dependency_explains_its_callers() -> None:
    pool = _f("pool_saturated", "quote-svc", Severity.CRITICAL, since="2026-03-04T10:10:00Z")
    timeouts = _f(
        "error_signature",
        "quote-svc",
        title="error on quote-svc: request timed out after 30000ms",
        first_seen="2026-03-04T10:12:00Z",
    )
    corr = correlate([timeouts, pool], lambda _: None, NOW)
    assert corr.root == key(pool) and corr.role(key(timeouts)) == "symptom"
    cpu = _f(
        "metric_high",
        "search-api",
        title="search-api usage_percent high at 99%",
        since="2026-03-04T10:00:00Z",
    )
    calls = _f(
        "dependency_failure",
        "frontend",
        title="frontend → search-api:8080: 25 lines of no response",
        peer="search-api:8080",
        peer_host="search-api",
        first_seen="2026-03-04T10:02:00Z",
    )
    corr = correlate([calls, cpu], lambda name: name.split(":")[0], NOW)
    assert corr.root == key(cpu) and corr.role(key(calls)) == "symptom"


def test_scenarios_with_a_known_root_name_it_in_the_headline() -> None:
    for name in (
        "gen-symptom-9002-open-transaction",
        "gen-symptom-disk-full-pg-errors",
        "gen-dual-blocking-and-disk",
    ):
        scenario = load_scenario(OWN_SCENARIOS / f"{name}.yaml")
        headline = investigate_scenario(scenario, NO_MODEL, OPTIONS, None).values["answer"].splitlines()[0]
        assert any(p.lower() in headline.lower() for p in scenario.expect.causal_root), (name, headline)


def test_opensre_dual_fault_root_is_the_pool_leak() -> None:
    values = _run(
        ROOT.parent / "shared/external/opensre-rds-postgres/opensre-rds-009-dual-fault-connection-cpu.yaml"
    )
    assert "connection pool leak" in values["answer"].splitlines()[0]
    roles = {f["kind"]: f["role"] for f in values["report"]["findings"]}
    assert roles["cpu_attribution"].startswith("symptom of")


def test_load_on_the_primary_is_the_root_of_the_lag_the_request_says_runs_to_the_replica() -> None:
    """A converted postmortem (GitLab, 2017): 'replication from db1 to db2' names no source's cue, yet
    both hosts are examined by what holds data on them; db1's CPU step leads, db2's lag and its
    'WAL segment already removed' errors follow it."""
    values = _run(ROOT / "evals/external/idb-postmortems/idb-06-gitlab-replication-lag-wal-removed.yaml")
    assert {p["specialist"] for p in values["plan"]} == {"logs", "metrics"}
    first = values["answer"].splitlines()[0]
    assert first.startswith("Most likely cause: Step change at 19:00 UTC on db1"), first
    roles = {f["title"].split(":")[0]: f["role"] for f in values["report"]["findings"]}
    lag = next(r for t, r in roles.items() if t.startswith("Replication lag on db2"))
    assert lag.startswith("symptom of"), roles
