"""ITSM relevance ranking and the ITSM view tools, against the itsm-change and network-crc worlds."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tools.itsm import views as itsm
from tools.replay import ReplayItsm
from tools.sources import SourceError, Sources, ToolContext
from tools.world import ItsmChange, ItsmIncident, World, parse_ts

EXAMPLES = Path(__file__).resolve().parents[2].joinpath("shared/scenarios/examples")
NOW = parse_ts("2026-07-08T10:10:00Z")


def world(name: str) -> World:
    return World.model_validate(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())["world"])


def change(number: str, ci: str, start: str | None, end: str | None, **kw: str) -> ItsmChange:
    return ItsmChange(
        number=number,
        short_description=kw.get("desc", f"work on {ci}"),
        cmdb_ci=ci,
        start_date=parse_ts(start) if start else None,
        end_date=parse_ts(end) if end else None,
        state=kw.get("state"),
        risk=kw.get("risk"),
    )


def ctx_for(source: object, hours: float = 1, now: datetime = NOW) -> ToolContext:
    return ToolContext(
        sources=Sources(itsm=source),  # type: ignore[arg-type]
        now=now,
        start=now - timedelta(hours=hours),
        end=now,
        history_start=now - timedelta(days=7),
    )


def replay(w: World) -> ReplayItsm:
    return ReplayItsm(w.itsm.incidents, w.itsm.changes)


# --- analysis -----------------------------------------------------------------------------------


def test_name_tokens_keep_only_distinctive_parts() -> None:
    assert itsm.name_tokens("payments-api") == {"payments"}
    assert itsm.name_tokens("payments-db") == {"payments"}
    assert itsm.name_tokens("sql-prod-02") == set()
    assert itsm.name_tokens("core-sw-01") == set()
    assert itsm.name_tokens("Inventory_API.prod") == {"inventory"}


def test_relevance() -> None:
    assert itsm.relevance("payments-api", "", ["payments-api"]) == ("exact CI", [])
    assert itsm.relevance("Payments-API", "", ["payments-api"]) == ("exact CI", [])
    assert itsm.relevance("payments-db", "", ["payments-api"]) == ("related CI", ["payments"])
    assert itsm.relevance("lb-7", "drain payments-api pool", ["payments-api"]) == (
        "related CI",
        ["payments-api"],
    )
    assert itsm.relevance("intranet-web", "Rotate TLS certificates", ["payments-api"]) == ("unrelated", [])


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("2026-07-08T09:35:00Z", "2026-07-08T10:30:00Z", True),  # inside, still running
        ("2026-07-08T08:00:00Z", "2026-07-08T09:10:00Z", True),  # ends exactly at window start
        ("2026-07-08T10:10:00Z", "2026-07-08T11:00:00Z", True),  # starts exactly at window end
        ("2026-07-08T08:00:00Z", None, True),  # open-ended
        ("2026-07-07T20:00:00Z", "2026-07-07T21:00:00Z", False),  # yesterday, closed
        ("2026-07-08T10:11:00Z", "2026-07-08T12:00:00Z", False),  # future
        (None, "2026-07-08T10:00:00Z", False),  # cannot be placed
    ],
)
def test_overlaps(start: str | None, end: str | None, expected: bool) -> None:
    window_start, window_end = NOW - timedelta(hours=1), NOW  # 09:10-10:10
    assert itsm.overlaps(change("CHG1", "x", start, end), window_start, window_end) is expected


def test_rank_changes_on_the_itsm_change_world() -> None:
    changes = world("itsm-change-01").itsm.changes
    one_hour = itsm.rank_changes(changes, ["payments-api"], NOW - timedelta(hours=1), NOW)
    assert [(r.change.number, r.relevance, r.shared) for r in one_hour] == [
        ("CHG0040123", "related CI", ["payments"])
    ]
    # a day-long window also catches yesterday's certificate change, ranked last as unrelated
    one_day = itsm.rank_changes(changes, ["payments-api"], NOW - timedelta(days=1), NOW)
    assert [(r.change.number, r.relevance) for r in one_day] == [
        ("CHG0040123", "related CI"),
        ("CHG0040101", "unrelated"),
    ]


def test_rank_puts_exact_before_related_and_latest_first() -> None:
    changes = [
        change("C1", "payments-db", "2026-07-08T09:20:00Z", None),
        change("C2", "payments-api", "2026-07-08T09:15:00Z", None),
        change("C3", "payments-db", "2026-07-08T09:50:00Z", None),
    ]
    ranked = itsm.rank_changes(changes, ["payments-api"], NOW - timedelta(hours=1), NOW)
    assert [r.change.number for r in ranked] == ["C2", "C3", "C1"]


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("1 - Critical", "critical"),
        ("2 - High", "warning"),
        ("P2", "warning"),
        ("4 - Low", "info"),
        (None, "info"),
    ],
)
def test_priority_severity(priority: str | None, severity: str) -> None:
    assert itsm.priority_severity(priority) == severity


# --- recent_changes -----------------------------------------------------------------------------


def test_recent_changes_finds_the_related_change() -> None:
    result = itsm.recent_changes(ctx_for(replay(world("itsm-change-01")), hours=6), "payments-api")
    (ev,) = result.evidence
    assert ev.id == "recent_changes@payments-api" and ev.specialist == "itsm" and ev.row_count == 1
    (finding,) = result.findings
    assert finding.kind == "change_in_window" and finding.severity == "warning"
    assert finding.title == (
        "Change CHG0040123 (payments-db, state Implement, risk Moderate) "
        "'Apply index maintenance and stats update on payments-db' ran 09:35–10:30 UTC "
        "(in progress at 10:10 UTC), overlapping the investigation window 04:10–10:10 UTC"
    )
    assert finding.detail == "Related CI of payments-api (shares 'payments')."
    assert "CHG0040101" not in " ".join(f.text for f in result.findings)  # yesterday's closed change


def test_recent_changes_on_the_exact_ci_and_for_everything() -> None:
    source = replay(world("itsm-change-01"))
    (exact,) = itsm.recent_changes(ctx_for(source), "payments-db").findings
    assert exact.detail == "On payments-db itself."
    everything = itsm.recent_changes(ctx_for(source, hours=24), "*").findings
    assert [f.data["number"] for f in everything] == ["CHG0040123", "CHG0040101"]
    assert all(f.severity == "info" for f in everything)


def test_future_and_unrelated_changes_are_not_findings() -> None:
    changes = [
        change("CHG9", "payments-api", "2026-07-08T12:00:00Z", "2026-07-08T13:00:00Z"),  # later today
        change("CHG8", "intranet-web", "2026-07-08T09:30:00Z", "2026-07-08T09:45:00Z"),  # unrelated
    ]
    result = itsm.recent_changes(ctx_for(ReplayItsm([], changes)), "payments-api")
    (finding,) = result.findings
    assert finding.kind == "no_changes_in_window"
    assert (
        finding.title
        == "No changes on payments-api or related CIs overlapping the investigation window 09:10–10:10 UTC"
    )
    assert finding.detail == "1 change in the window on other, unrelated CIs."


# --- open_incidents -----------------------------------------------------------------------------


def test_open_incidents_ignores_unrelated_cis() -> None:
    source = replay(world("network-crc-01"))
    (finding,) = itsm.open_incidents(ctx_for(source), "core-sw-01").findings
    assert (
        finding.kind == "no_open_incidents"
        and finding.title == "No open incidents for core-sw-01 or related CIs"
    )
    assert finding.detail == "1 open incident on other, unrelated CIs."
    (printer,) = itsm.open_incidents(ctx_for(source), "prn-f3-02").findings
    assert printer.kind == "open_incident" and printer.severity == "info"
    assert "INC0019876" in printer.title and "'Printer offline on floor 3'" in printer.title


def test_open_incidents_exact_first_then_related() -> None:
    incidents = [
        ItsmIncident(number="INC2", short_description="slow", cmdb_ci="payments-db", priority="2 - High"),
        ItsmIncident(
            number="INC1", short_description="errors", cmdb_ci="payments-api", priority="3 - Moderate"
        ),
        ItsmIncident(number="INC3", short_description="done", cmdb_ci="payments-api", state="Resolved"),
    ]
    findings = itsm.open_incidents(ctx_for(ReplayItsm(incidents, [])), "payments-api").findings
    assert [f.data["number"] for f in findings] == ["INC1", "INC2"]  # the resolved one is not open
    assert [f.severity for f in findings] == ["info", "warning"]
    assert "related CI of payments-api (shares 'payments')" in findings[1].title


class BrokenItsm:
    def configuration_items(self) -> set[str]:
        raise SourceError("servicenow 503")

    def incidents(self, **kwargs: object) -> list[ItsmIncident]:
        raise SourceError("servicenow 503")

    def changes(self, **kwargs: object) -> list[ItsmChange]:
        raise SourceError("servicenow 503")


@pytest.mark.parametrize("source", [BrokenItsm(), None])
def test_failing_or_missing_source_becomes_evidence(source: object) -> None:
    for tool in itsm.ITSM_TOOLS:
        result = tool(ctx_for(source), "payments-api")
        (ev,) = result.evidence
        assert ev.error and ev.id == f"{tool.spec.name}@payments-api" and result.findings == []


def test_tools_in_playbook_order() -> None:
    assert [t.spec.name for t in itsm.ITSM_TOOLS] == ["open_incidents", "recent_changes"]
