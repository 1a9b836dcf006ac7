"""What log lines say at any level: durations, pools, status codes, retries, dependencies, precursors; and
the window-wide search with server-side counts (replay backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tools.logs import signals as sg
from tools.logs.signal_views import log_search, log_signals
from tools.replay import ReplayLogs
from tools.sources import Sources, ToolContext
from tools.world import Level, LogRecord

T0 = datetime(2026, 3, 18, 8, 0, tzinfo=UTC)


def rec(minute: float, message: str, severity: Level = "info", host: str = "app-1") -> LogRecord:
    return LogRecord(timestamp=T0 + timedelta(minutes=minute), host=host, severity=severity, message=message)


def ctx(records: list[LogRecord], terms: list[str] | None = None, minutes: int = 240) -> ToolContext:
    return ToolContext(
        sources=Sources(logs=ReplayLogs(records)),
        now=T0 + timedelta(minutes=minutes),
        start=T0,
        end=T0 + timedelta(minutes=minutes),
        history_start=T0 - timedelta(days=7),
        terms=terms or [],
    )


def test_durations_of_completed_calls_only() -> None:
    assert sg.duration_s("Database call completed in 9.01 seconds") == 9.01
    assert sg.duration_s("query took 2300 ms") == 2.3
    assert sg.duration_s("request timed out after 30000ms") is None
    assert sg.duration_s("upstream connect timeout set to 30s") is None
    assert sg.duration_s("GET /orders 200 0.041") is None


def test_slow_calls_at_info_level_after_fast_ones() -> None:
    lines = [rec(i * 10, f"Database call completed in 0.1{i % 5} seconds") for i in range(6)]
    lines += [rec(60 + i * 10, f"Database call completed in 9.{i} seconds") for i in range(5)]
    (slow,) = sg.slow_calls(lines, threshold_s=2.0)
    assert slow.slow == 5 and slow.since == T0 + timedelta(minutes=60) and slow.max_s == 9.4
    assert slow.before_s is not None and slow.before_s < 0.2
    assert sg.slow_calls([rec(0, "checkpoint complete: elapsed: 0.43 s")], 2.0) == []


def test_pool_usage_and_saturation() -> None:
    hikari = "HikariPool-1 - Pool stats (total=20, active=20, idle=0, waiting=34)"
    assert sg.pool_usage(hikari) == sg.PoolUsage(used=20, size=20, waiting=34, name="HikariPool-1")
    assert sg.pool_usage("Health check OK (db pool 3/40 in use)") == sg.PoolUsage(used=3, size=40)
    assert sg.pool_usage("retrying (attempt 2/5)") is None
    assert sg.pool_usage("Rendered page 3 of 40") is None
    lines = [rec(i, "HikariPool-1 - Pool stats (total=20, active=6, idle=14, waiting=0)") for i in range(5)]
    lines += [rec(10 + i, hikari) for i in range(4)]
    sat = sg.pool_saturation(lines, 0.9)
    assert sat is not None and (sat.used, sat.size, sat.waiting, sat.lines, sat.before) == (
        20,
        20,
        34,
        4,
        "6/20",
    )


def test_status_codes_and_retries() -> None:
    lines = [rec(i, '10.0.0.1 - - "GET / HTTP/1.1" 200 512 0.03') for i in range(8)]
    lines += [
        rec(9, "POST /v1/charge failed: HTTP 503 Service Unavailable"),
        rec(10, "upstream returned 502"),
    ]
    counts = sg.status_counts(lines)
    assert (
        counts is not None and counts.by_code == {"200": 8, "502": 1, "503": 1} and counts.server_errors == 2
    )
    tries = sg.retries(
        [rec(i, f"retrying (attempt {i}/5)") for i in range(1, 4)] + [rec(5, "giving up after 5 attempts")]
    )
    assert tries is not None and (tries.retries, tries.gave_up) == (3, 1)
    assert sg.retries([rec(0, "db pool exhausted, waited 5000 ms")]) is None


def test_dependency_failures_name_the_peer() -> None:
    lines = [
        rec(1, "query to pg-orders-01:5432 timed out after 5000 ms", "error"),
        rec(2, "dial tcp 10.0.4.21:3306: i/o timeout"),
        rec(3, "Request to ledger-core:9443 got no response within 10s, retrying"),
        rec(4, "upstream orders-v2:8080 connect() failed (111: Connection refused)", "error"),
        rec(5, "upstream connect timeout set to 30s for pool orders"),  # a setting, not a failure
        rec(6, "Execution Timeout Expired. The timeout period elapsed"),  # no peer named
    ]
    found = {d.peer: d for d in sg.dependency_failures(lines, {"app-1"})}
    assert set(found) == {"pg-orders-01:5432", "10.0.4.21:3306", "ledger-core:9443", "orders-v2:8080"}
    assert found["ledger-core:9443"].kinds == ["no response"] and found["ledger-core:9443"].worst == "info"
    assert (
        "refused" in found["orders-v2:8080"].kinds and found["pg-orders-01:5432"].peer_host == "pg-orders-01"
    )


def test_precursors_come_before_the_first_error_only() -> None:
    lines = [
        rec(0, "Job nightly_load started"),
        rec(2, "Reloaded configuration from /etc/gw/routes.yaml", "warning"),
        rec(4, "upstream failed", "error"),
        rec(6, "Container restarted (exit code 137)", "warning"),
    ]
    (p,) = sg.precursors(lines)
    assert p.change == "configuration reload" and p.lead_s == 120
    assert sg.precursors([rec(0, "Reloaded configuration"), rec(1, "GET / 200")]) == []  # no error: no cause
    assert (
        sg.precursors([rec(0, "Deployed version 2.14.0"), rec(45, "NPE", "error")]) == []
    )  # too long before


def test_log_signals_tool_reads_every_level() -> None:
    lines = [rec(i * 10, f"Database call completed in 0.1{i} seconds") for i in range(5)]
    lines += [rec(60 + i * 10, f"Database call completed in 9.{i} seconds") for i in range(5)]
    lines += [rec(100 + i, "Request to ledger-core:9443 got no response within 10s") for i in range(3)]
    kinds = sorted(f.kind for f in log_signals(ctx(lines), "app-1").findings)
    assert kinds == ["dependency_failure", "slow_calls"]


def test_log_search_counts_the_whole_window_not_the_latest_lines() -> None:
    lines = [rec(10 + i, "ERROR ReportJob q3-summary failed: template 'q3.xlsx' not found") for i in range(7)]
    lines += [rec(60 + i * 0.05, f"Rendered page {i % 40} in 12 ms") for i in range(2500)]
    result = log_search(ctx(lines, ["ERROR"]), "app-1")
    (f,) = result.findings
    assert f.data["total"] == 7 and f.title.startswith('7 lines containing "ERROR" on app-1')
    assert "first at 08:10 UTC, last at 08:16 UTC, in 1 template" in f.title
    assert log_search(ctx(lines), "app-1").findings == []  # no terms: nothing to search for


def test_replay_summary_matches_search() -> None:
    lines = [rec(i, f"msg {i % 3}", "error" if i % 4 == 0 else "info", host=f"h{i % 2}") for i in range(40)]
    logs = ReplayLogs(lines)
    start, end = T0, T0 + timedelta(hours=1)
    summary = logs.summarize(entities=["h0"], start=start, end=end, terms=["msg 1", "msg 2"], size=1)
    found = logs.search(entities=["h0"], start=start, end=end, terms=["msg 1", "msg 2"], limit=0)
    everything = logs.search(entities=["h0"], start=start, end=end, terms=["msg 1", "msg 2"], limit=1000)
    assert found == [] and summary.total == len(everything) == 13
    assert summary.messages[0].count + summary.other == 13 and len(summary.messages) == 1
    assert summary.first_seen == everything[0].timestamp and summary.last_seen == everything[-1].timestamp
    assert sum(summary.by_severity.values()) == 13 and summary.by_entity == {"h0": 13}
