"""The window-wide log search against a real OpenSearch-API server (osmem-server, the same documents as
test_logs_live): terms filtered by the server, counts/first/last/per-message aggregations computed by it,
and the same answer as the replay backend over the same documents."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.live.test_logs_live import END, START, documents, logs, opensearch  # noqa: F401  (fixtures)
from tools.logs.elastic import ElasticLogs
from tools.logs.elastic_query import level_of
from tools.logs.signal_views import log_search
from tools.replay import ReplayLogs
from tools.sources import Sources, ToolContext
from tools.world import LogRecord

pytestmark = pytest.mark.live


def _replay() -> ReplayLogs:
    records = []
    for index, doc in documents():
        host = doc.get("host")
        records.append(
            LogRecord.model_validate(
                {
                    "timestamp": doc["@timestamp"],
                    "index": index,
                    "message": doc["message"],
                    "instance_name": doc.get("instance_name"),
                    "host": host["name"] if isinstance(host, dict) else host,
                    "severity": level_of(doc.get("severity") or (doc.get("log") or {}).get("level")),
                }
            )
        )
    return ReplayLogs(records)


def test_terms_are_filtered_by_the_server(logs: ElasticLogs) -> None:  # noqa: F811
    found = logs.search(entities=["sql-prod-01"], start=START, end=END, terms=["Login failed"], limit=100)
    assert len(found) == 6 and all("Login failed" in r.message for r in found)
    both = logs.search(
        entities=["sql-prod-01"], start=START, end=END, terms=["Login failed", "is full"], limit=100
    )
    assert len(both) == 9


def test_summary_aggregations_match_replay(logs: ElasticLogs) -> None:  # noqa: F811
    live = logs.summarize(entities=["sql-prod-01"], start=START, end=END, terms=["Login failed", "is full"])
    replay = _replay().summarize(
        entities=["sql-prod-01"], start=START, end=END, terms=["Login failed", "is full"]
    )
    assert live.total == replay.total == 9
    assert (live.first_seen, live.last_seen) == (replay.first_seen, replay.last_seen)
    assert live.by_severity == replay.by_severity
    assert sorted((m.message, m.count) for m in live.messages) == sorted(
        (m.message, m.count) for m in replay.messages
    )
    assert live.other == 0


def test_summary_counts_everything_not_the_latest_lines(logs: ElasticLogs) -> None:  # noqa: F811
    everything = logs.summarize(entities=None, start=START, end=END, size=3)
    assert everything.total == sum(everything.by_severity.values()) > 50
    assert len(everything.messages) == 3 and everything.other == everything.total - sum(
        m.count for m in everything.messages
    )


def test_log_search_tool_on_the_live_backend(logs: ElasticLogs) -> None:  # noqa: F811
    ctx = ToolContext(
        sources=Sources(logs=logs),
        now=END,
        start=START,
        end=END,
        history_start=END - timedelta(days=7),
        terms=["Login failed"],
    )
    (finding,) = log_search(ctx, "sql-prod-01").findings
    assert finding.data["total"] == 6 and "in 1 template" in finding.title
