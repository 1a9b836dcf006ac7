"""Entity matching (near misses, unknown names, services), the request's concerns, and unreachable
instances in replayed worlds."""

from __future__ import annotations

import pytest

from graphs.concerns import asked_concerns, expected_concerns, is_broad, is_follow_up
from graphs.planner import candidate_names, read_scope
from tools.inventory import Inventory, build_inventory, name_key
from tools.replay import replay_sources
from tools.sources import SourceError, Sources
from tools.world import World


def _inventory(*names: str, kind: str = "sql_instance") -> Inventory:
    inv = Inventory()
    for n in names:
        inv.add(n, kind)
    return inv


@pytest.mark.parametrize(
    ("said", "known", "how"),
    [
        ("sql-prod-01", "sql-prod-01", "exact"),
        ("SQL-PROD-01", "sql-prod-01", "case"),
        ("sql-prod-01:1433", "sql-prod-01", "case"),
        ("sql-prod-01.corp.example", "sql-prod-01", "case"),
        ("sql_prod_01", "sql-prod-01", "near-miss"),
        ("sqlprod01", "sql-prod-01", "near-miss"),
        ("sql-prod-1", "sql-prod-01", "near-miss"),
        ("sql-prd-01", "sql-prod-01", "near-miss"),  # a typo in the letters, same number
        ("pg-inventory-1", "pg-inventory-01", "near-miss"),
    ],
)
def test_near_misses_resolve_to_the_known_name(said: str, known: str, how: str) -> None:
    inv = _inventory("sql-prod-01", "sql-prod-10", "pg-inventory-01", "pg-orders-01")
    match = inv.resolve(said)
    assert match is not None and (match.known, match.how) == (known, how)


@pytest.mark.parametrize(
    "said", ["sql-prod-02", "sql-prod-011", "pg-payments-07", "sqlprod2", "pg-orders-1x"]
)
def test_a_different_number_or_name_is_never_taken_for_a_known_one(said: str) -> None:
    inv = _inventory("sql-prod-01", "pg-orders-01")
    assert inv.resolve(said) is None


def test_ambiguous_near_misses_are_not_guessed() -> None:
    inv = _inventory("sql-prod-01", "sql_prod_01")  # two known names with the same key
    assert inv.resolve("sqlprod01") is None


def test_name_keys_drop_case_separators_and_leading_zeros() -> None:
    assert name_key("SQL_Prod-001") == name_key("sqlprod1") == "sqlprod1"


def test_closest_known_names_are_offered() -> None:
    inv = _inventory("sql-prod-01", "sql-prod-10", "pg-orders-01")
    inv.add("checkout", "kb_service")  # known only from past incidents: not offered
    assert inv.closest("sql-prod-02")[:2] == ["sql-prod-01", "sql-prod-10"]
    assert "checkout" not in inv.closest("checkout-02")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("is sql-prod-02 ok?", ["sql-prod-02"]),
        ("sqlprod01 is hanging, pls help", ["sqlprod01"]),
        ("check web23 and db01.corp.local", ["web23", "db01.corp.local"]),
        (
            "p95 on payments-api jumped; tls1.2 errors on x86_64 after INC-2031 / CHG0040123 / OPS-123",
            ["payments-api"],
        ),
        ("10.2.0.15 and 40P01 and v2 and db.r5.large", []),
    ],
)
def test_candidate_names_are_host_like_tokens(text: str, names: list[str]) -> None:
    assert candidate_names(text) == names


def test_unknown_names_are_reported_with_the_closest_known_ones() -> None:
    inv = _inventory("sql-prod-01")
    scope = read_scope("is sql-prod-02 ok?", None, inv)
    assert scope.entities == [] and not scope.sweep
    assert [(u.name, u.closest, u.kind) for u in scope.unknown] == [
        ("sql-prod-02", ["sql-prod-01"], "instance")
    ]


def test_a_service_word_names_its_family_and_aliases_map_services() -> None:
    inv = _inventory("payments-db", kind="ci")
    inv.add("payments-api", "metric_entity")
    inv.add("checkout", "service")
    inv.add("sql-prod-01", "sql_instance")
    inv.relate("checkout", "sql-prod-01", "configured alias")
    scope = read_scope("payments are slow, and so is checkout", None, inv)
    names = {e.name: e for e in scope.entities}
    assert {"payments-api", "payments-db", "checkout", "sql-prod-01"} <= set(names)
    assert names["sql-prod-01"].matched_by == "service"
    assert "checkout runs on sql-prod-01 (configured alias)" in scope.statements


def test_the_inventory_collects_aliases_and_past_incidents_services() -> None:
    world = World.model_validate(
        {
            "sql": {"sql-prod-01": {"engine": "mssql"}},
            "past_incidents": [{"id": "INC-1", "title": "t", "services": ["checkout", "sql-prod-01"]}],
        }
    )

    class Groups:  # a knowledge source that says which services past incidents name together
        def size(self) -> int:
            return 1

        def services(self) -> set[str]:
            return {"checkout", "sql-prod-01"}

        def search(self, query: str, k: int = 3) -> list[object]:
            return []

        def service_groups(self) -> list[tuple[str, list[str]]]:
            return [("INC-1", ["checkout", "sql-prod-01"])]

    sources = replay_sources(world)
    sources.knowledge = Groups()  # type: ignore[assignment]
    sources.aliases = {"orders": ["sql-prod-01", "sql-prod-99"]}
    inv = build_inventory(sources)
    assert inv.related("checkout") == {"sql-prod-01": "named together in past incident INC-1"}
    assert inv.related("orders") == {"sql-prod-01": "configured alias"}  # sql-prod-99 is known to no source
    assert inv.sources == ["sql", "knowledge"]
    assert Inventory.from_json(inv.to_json()) == inv


@pytest.mark.parametrize(
    ("question", "concerns", "broad"),
    [
        ("is the db ok?", [], True),
        ("are there long-running queries on pg-orders-01?", ["long_running"], False),
        ("were there deadlocks on pg-orders-01?", ["deadlocks"], False),
        (
            "why is pg-orders-01 slow?",
            ["blocking", "long_running", "waits", "regressions", "latency", "resource_usage"],
            False,
        ),
        (
            "Is sql-prod-01 healthy? users say it is slow",
            ["blocking", "long_running", "waits", "regressions", "latency", "resource_usage"],
            True,
        ),
    ],
)
def test_words_map_to_concerns(question: str, concerns: list[str], broad: bool) -> None:
    assert asked_concerns(question) == concerns
    assert is_broad(question) is broad


def test_a_health_question_on_an_instance_expects_what_a_dba_would_check() -> None:
    expected = expected_concerns(["sql_instance"])
    assert {"blocking", "long_running", "deadlocks", "connections", "space", "replication"} <= set(expected)


@pytest.mark.parametrize(
    ("question", "follow_up"),
    [
        ("what should I do about it?", True),
        ("and now what?", True),
        ("how do I fix that?", True),
        ("what should I do about sql-prod-01?", False),
        ("is the db ok?", False),
    ],
)
def test_follow_ups_are_recognised(question: str, follow_up: bool) -> None:
    assert is_follow_up(question) is follow_up


def test_an_unreachable_instance_is_listed_but_every_read_fails() -> None:
    world = World.model_validate(
        {"sql": {"pg-a": {"engine": "postgresql", "unreachable": "connection refused"}}}
    )
    sql = replay_sources(world).sql
    assert sql is not None and sql.instances() == {"pg-a": "postgresql"}
    with pytest.raises(SourceError, match="pg-a unreachable: connection refused"):
        sql.sessions("pg-a")
    assert Sources().aliases == {}
