"""Request understanding without a model: time windows (dateparser), search terms and intent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from graphs.request import search_terms, time_window, understand

SIX_HOURS = timedelta(hours=6)
NOW = datetime(2026, 8, 5, 10, 0, tzinfo=UTC)


def _window(text: str, now: datetime = NOW, names: list[str] | None = None) -> tuple[str, str, str]:
    w = time_window(text, now, SIX_HOURS, names or [])
    return f"{w.start:%Y-%m-%d %H:%M}", f"{w.end:%Y-%m-%d %H:%M}", w.how


@pytest.mark.parametrize(
    ("text", "start", "end", "how"),
    [
        ("What went wrong on August 2 at 13:45?", "2026-08-02 13:15", "2026-08-02 14:15", "moment"),
        ("any errors since June 12?", "2026-06-12 00:00", "2026-08-05 10:00", "since"),
        ("what did it log last December", "2025-12-01 00:00", "2026-01-01 00:00", "month"),
        ("was it slow yesterday around 14:30?", "2026-08-04 14:00", "2026-08-04 15:00", "moment"),
        ("errors yesterday", "2026-08-04 00:00", "2026-08-05 00:00", "day"),
        ("what happened between 02:00 and 03:00?", "2026-08-05 02:00", "2026-08-05 03:00", "range"),
        ("errors from 22:00 to 02:00", "2026-08-04 22:00", "2026-08-05 02:00", "range"),
        ("in the last 2 hours", "2026-08-05 08:00", "2026-08-05 10:00", "last"),
        ("it has been hanging for 20 minutes", "2026-08-05 09:40", "2026-08-05 10:00", "last"),
        ("did it fail before 09:00?", "2026-08-05 03:00", "2026-08-05 09:00", "before"),
        ("compare with last month", "2026-07-06 10:00", "2026-08-05 10:00", "last"),
    ],
)
def test_time_phrases_resolve_against_the_clock(text: str, start: str, end: str, how: str) -> None:
    assert _window(text) == (start, end, how)


@pytest.mark.parametrize(
    "text",
    [
        "Why is checkout timing out on sql-prod-01?",
        "How many HTTP 503s did checkout-api return?",  # a status code is not a time
        "error 1205 on sql-prod-02",  # nor is an error code
        "it may be the cache on web-01:8080",  # 'may' is not the month, host:port not a time
        "orders take 2300 ms and the pool is 20/20",
        "Is pg-inventory-01 healthy? Quick check before tonight's release.",  # the future is ignored
    ],
)
def test_false_positives_leave_the_default_window(text: str) -> None:
    w = time_window(text, NOW, SIX_HOURS, ["sql-prod-01", "sql-prod-02", "pg-inventory-01"])
    assert w.is_default and (w.start, w.end) == (NOW - SIX_HOURS, NOW)


def test_now_in_the_question_extends_the_window_to_now() -> None:
    w = time_window("is access-sw-07 healthy now? it flapped yesterday", NOW, SIX_HOURS)
    assert f"{w.start:%Y-%m-%d %H:%M}" == "2026-08-04 00:00" and w.end == NOW


def test_label_and_describe() -> None:
    scope = understand('lines containing "ERROR" on web-01 on August 2 at 13:45', None, NOW, SIX_HOURS)
    assert scope.window.label() == "2026-08-02 13:15–14:15 UTC"
    assert scope.describe().startswith("looked at 2026-08-02 13:15–14:15 UTC")
    assert scope.term_texts == ["ERROR"]


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ('lines containing "connection reset" on api-1', ["connection reset"]),
        ("show me lines containing ERROR", ["ERROR"]),
        ("How many HTTP 503s in the last hour?", ["503"]),
        ("any 502 errors?", ["502"]),
        ("Any ORA-00060 errors this morning?", ["ORA-00060"]),
        ("did error 1205 come back?", ["1205"]),
        ("SQLSTATE 40P01 on pg-01", ["40P01"]),
        ("why so many LCK_M_X waits", ["LCK_M_X"]),
        ("sessions waiting on Lock:transactionid", ["Lock:transactionid"]),
        ("Why is checkout slow?", []),
    ],
)
def test_search_terms(text: str, terms: list[str]) -> None:
    assert [t.text for t in search_terms(text)] == terms


def test_intents() -> None:
    assert "health_check" in understand("Is billing-db healthy?", None, NOW, SIX_HOURS).intent
    assert "what_changed" in understand("What changed before the errors?", None, NOW, SIX_HOURS).intent
    assert "summarise_errors" in understand("show me the errors", None, NOW, SIX_HOURS).intent
    assert "when_started" in understand("when did it start?", None, NOW, SIX_HOURS).intent
    scope = understand("compare latency with the same time yesterday", None, NOW, SIX_HOURS)
    assert "compare" in scope.intent and scope.compare_with is not None


def test_alert_window_reaches_back_before_the_alert_started() -> None:
    alert = {"starts_at": "2026-08-04T20:00:00Z"}
    scope = understand("Alert X", alert, NOW, SIX_HOURS)
    assert scope.window.start == datetime(2026, 8, 4, 19, 30, tzinfo=UTC) and scope.window.end == NOW
    recent = understand("Alert X", {"starts_at": "2026-08-05T09:50:00Z"}, NOW, SIX_HOURS)
    assert recent.window.is_default


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("Replication from db1 to db2 is broken. Why?", [("db2", "db1")]),
        ("db2 is a replica of db1 and lags", [("db2", "db1")]),
        ("db2 replicates from db1", [("db2", "db1")]),
        ("why is db1 -> db2 replication behind?", [("db2", "db1")]),
        ("replication from db1 to db9 is broken", []),  # db9 is not a known name
        ("db1 and db2 are slow", []),
    ],
)
def test_replication_pairs_come_only_from_what_the_request_states(
    text: str, pairs: list[tuple[str, str]]
) -> None:
    from graphs.request import replication_pairs

    assert replication_pairs(text, ["db1", "db2"]) == pairs
