"""Alerts answered as alerts (start, age, annotations, runbook, explained or not, heartbeats), bounded-series
forecasts, absolute thresholds, and the harness's causal_root check."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.llm import ModelHandle
from evals.loader import load_scenario
from evals.runner import RunOptions, investigate_scenario
from evals.scoring import score
from graphs.alert_answer import alert_lines, is_heartbeat
from graphs.correlate import Correlation
from tests.conftest import OWN_SCENARIOS
from tools.base import Finding, Severity
from tools.metrics.bounded import Limit, absolute_breach, bounded_limit, forecast_bounded
from tools.world import Series

NOW = datetime(2026, 7, 21, 10, 0, tzinfo=UTC)


def _series(field: str, values: list[float], unit: str | None = "percent", measurement: str = "m") -> Series:
    pts = [(NOW - timedelta(minutes=15 * (len(values) - 1 - i)), v) for i, v in enumerate(values)]
    return Series(measurement=measurement, tags={"host": "h"}, field=field, unit=unit, points=pts)


def test_heartbeats_are_recognised_by_name_or_annotation() -> None:
    assert is_heartbeat({"name": "Watchdog"}) and is_heartbeat({"name": "DeadMansSwitch"})
    assert is_heartbeat(
        {"name": "X", "annotations": {"description": "This alert is always firing by design"}}
    )
    assert not is_heartbeat({"name": "HighErrorRate", "annotations": {"summary": "error rate above 5%"}})


def test_alert_lines_give_start_age_annotations_runbook_and_whether_explained() -> None:
    alert = {
        "name": "PostgresReplicationLagHigh",
        "entity": "pg-rep-02",
        "severity": "warning",
        "status": "firing",
        "starts_at": "2026-07-21T09:20:00Z",
        "annotations": {
            "summary": "Replication lag is 95s",
            "runbook_url": "https://runbooks.example.com/lag",
        },
    }
    lag = Finding(
        specialist="metrics",
        entity="pg-rep-02",
        kind="rising_trend",
        severity=Severity.WARNING,
        title="Replication lag on pg-rep-02 reached 95 s",
    )
    lines = alert_lines(alert, NOW, [lag], Correlation(), {"rising_trend|pg-rep-02|" + lag.title: 1})
    text = "\n".join(lines)
    assert (
        lines[0] == "Alert PostgresReplicationLagHigh (warning, firing) on pg-rep-02, "
        "started 2026-07-21 09:20 UTC (40 min ago)."
    )
    assert "Summary: Replication lag is 95s" in text and "Runbook: https://runbooks.example.com/lag" in text
    assert "Explained by finding 1 on the alert's entity" in text
    quiet = "\n".join(alert_lines(alert, NOW, [], Correlation(), {}))
    assert "Not explained: nothing examined explains this alert" in quiet
    assert alert_lines(None, NOW, [], Correlation(), {}) == []


@pytest.mark.parametrize("name", ["gen-alert-watchdog", "gen-alert-unexplained-error-rate"])
def test_alert_scenarios_propose_nothing(name: str) -> None:
    run = investigate_scenario(
        load_scenario(OWN_SCENARIOS / f"{name}.yaml"),
        ModelHandle.unavailable(),
        RunOptions(semantic_routing=False),
        None,
    )
    assert run.values["proposals"] == [] and run.values["status"] == "done"


def test_bounded_limits() -> None:
    mem = _series("used_percent", [60, 62], measurement="mem")
    assert bounded_limit(mem, [mem]) == Limit(value=100.0, label="100%")
    disk = Series(measurement="disk", tags={"path": "/"}, field="used_percent", unit="percent")
    assert bounded_limit(disk, [disk]) is None  # storage belongs to the capacity forecast
    assert bounded_limit(_series("error_rate_percent", [1]), []) is None
    conns = _series("numbackends", [300], unit=None)
    top = _series("max_connections", [500], unit=None)
    assert bounded_limit(conns, [conns, top]) == Limit(value=500, label="max_connections (500)")
    assert bounded_limit(conns, [conns]) is None


def test_forecast_bounded_projects_a_straight_climb() -> None:
    s = _series("used_percent", [60 + 28 * i / 24 for i in range(25)])  # 60 -> 88 over 6 h: 4.67 points/h
    f = forecast_bounded(s, Limit(value=100, label="100%"), horizon_h=48)
    assert f is not None and round(f.seconds / 3600, 1) == 2.6 and f.eta == NOW + timedelta(seconds=f.seconds)
    assert forecast_bounded(s, Limit(value=100, label="100%"), horizon_h=2) is None  # beyond the horizon
    noisy = _series("used_percent", [63, 64, 63, 64, 65, 63, 88])  # one jump is an anomaly, not a trend
    assert forecast_bounded(noisy, Limit(value=100, label="100%"), horizon_h=48) is None


def test_absolute_breaches_need_no_baseline() -> None:
    flat_bad = _series("error_rate_percent", [12.0] * 10)
    b = absolute_breach(flat_bad, 5.0, 20.0, 0.9)
    assert b is not None and (b.what, b.level, b.critical) == ("error rate", 12.0, False)
    assert absolute_breach(_series("error_rate_percent", [0.2] * 10), 5.0, 20.0, 0.9) is None
    pool = _series("usage_percent", [97, 99, 100, 98, 100], measurement="app_db_pool")
    assert absolute_breach(pool, 5.0, 20.0, 0.9) is not None
    assert absolute_breach(_series("usage_percent", [97] * 5, measurement="cpu"), 5.0, 20.0, 0.9) is None


def test_causal_root_is_checked_on_the_headline_only() -> None:
    scenario = load_scenario(OWN_SCENARIOS / "gen-search-waittype-sql-fin.yaml")
    kwargs = {
        "route": ["database"],
        "proposals": [{"action": "kill_session", "target": "sql-fin-01 session 73"}],
        "citations": [],
        "pending_approval": True,
        "executed_actions": [],
    }
    good = score(scenario, answer="Most likely cause: head blocker session 73\nLCK_M_X waits", **kwargs)  # type: ignore[arg-type]
    assert good.passed and good.causal_root_ok
    buried = score(scenario, answer="Most likely cause: LCK_M_X waits\nhead blocker 73", **kwargs)  # type: ignore[arg-type]
    assert not buried.passed and not buried.causal_root_ok and buried.findings_ok
