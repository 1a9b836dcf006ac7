"""ElasticLogs against a real OpenSearch-API server: osmem-server (PyPI `osmem-server`, an in-memory
OpenSearch 3.x API), started once for this module on a free port, queried through the official
`elasticsearch` 9.x client in plain-JSON mode (`flavor: opensearch`).

Stand-in only: `es_proxy` plays an Elasticsearch 9 node in front of osmem. It accepts only the
client's compatibility media type (which osmem, like OpenSearch, rejects), checks Basic auth,
rewrites the media type to plain JSON and forwards; it proves the `flavor: elasticsearch` path
sends what Elasticsearch expects and reads what it answers. No real Elasticsearch runs here.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import EXAMPLES
from tests.live import unavailable
from tests.standins.loopback import LoopbackServer, QuietHandler
from tools.estate import ElasticConfig
from tools.isolation import collecting_notes
from tools.logs.elastic import OPENSEARCH_FIX, ElasticError, ElasticLogs
from tools.logs.views import error_signatures, log_bursts
from tools.replay import ReplayLogs
from tools.sources import LogSource, SourceError, Sources, ToolContext
from tools.world import LogRecord, World

pytestmark = pytest.mark.live

DAY = datetime(2026, 4, 21, tzinfo=UTC)
START, END = DAY.replace(hour=15), DAY.replace(hour=16, minute=5)
COMPAT = "application/vnd.elasticsearch+json; compatible-with=9"
APP_MAPPING = {  # ECS-style, as a Filebeat/Elastic Agent template maps it: keywords, nested host/log
    "properties": {
        "@timestamp": {"type": "date"},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "service": {"properties": {"name": {"type": "keyword"}}},
        "log": {"properties": {"level": {"type": "keyword"}}},
        "event": {"properties": {"dataset": {"type": "keyword"}}},
        "message": {"type": "text"},
    }
}
OLD_MSSQL_MAPPING = {  # an older template: keywords where the later dynamic indices have text + .keyword
    "properties": {
        "@timestamp": {"type": "date"},
        "instance_name": {"type": "keyword"},
        "severity": {"type": "keyword"},
        "message": {"type": "text"},
    }
}


def scenario_world(name: str) -> World:
    return World.model_validate(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())["world"])


def _at(hour: int, minute: int, second: int = 0) -> str:
    return DAY.replace(hour=hour, minute=minute, second=second).isoformat().replace("+00:00", "Z")


def _errorlog(ts: str, instance: str, severity: str, message: str, **extra: Any) -> dict[str, Any]:
    host = {"sql-prod-01": "db-host-01", "sql-prod-03": "db-host-03"}.get(instance)
    doc = {"@timestamp": ts, "instance_name": instance, "severity": severity, "log_category": "errorlog"}
    return doc | ({"host": host} if host else {}) | {"message": message, "process": "sqlservr"} | extra


def _app(ts: str, host: str, level: str, message: str, service: str) -> dict[str, Any]:
    return {
        "@timestamp": ts,
        "host": {"name": host},
        "service": {"name": service},
        "log": {"level": level},
        "event": {"dataset": "application"},
        "message": message,
    }


def documents() -> list[tuple[str, dict[str, Any]]]:
    """(index, document): the logs-deadlock-01 scenario's records plus a realistic estate around them."""
    docs: list[tuple[str, dict[str, Any]]] = []
    for r in scenario_world("logs-deadlock-01").logs:
        assert r.index is not None
        if r.instance_name:
            doc: dict[str, Any] = {
                "@timestamp": r.timestamp.isoformat().replace("+00:00", "Z"),
                "instance_name": r.instance_name,
            }
            doc |= {"severity": r.severity, "log_category": r.log_category, "message": r.message}
            docs.append((r.index, doc))
        else:  # the application's retry warning, shipped ECS-style
            ts = r.timestamp.isoformat().replace("+00:00", "Z")
            docs.append((r.index, _app(ts, r.host or "", "WARN", r.message, "inventory-api")))
    mssql = "mssql-logs-2026.04.21"
    for minute in (40, 45, 50):
        msg = (
            "The transaction log for database 'Sales' is full due to 'LOG_BACKUP'. "
            "Error: 9002, Severity: 17, State: 2."
        )
        docs.append((mssql, _errorlog(_at(15, minute), "sql-prod-01", "error", msg, spid="spid61")))
    for i in range(6):
        msg = (
            "Login failed for user 'svc_report'. Reason: Password did not match that for the login "
            f"provided. [CLIENT: 10.20.4.{17 + i}] Error: 18456, Severity: 14, State: 8."
        )
        docs.append((mssql, _errorlog(_at(15, 10 + i * 7), "sql-prod-01", "Warning", msg, spid="spid52")))
    for minute in range(0, 60, 15):
        info = (
            "Log was backed up. Database: Sales, creation date(time): 2024/01/02(10:11:12), pages dumped: 81."
        )
        docs.append((mssql, _errorlog(_at(15, minute), "sql-prod-01", "information", info)))
        docs.append(
            (mssql, _errorlog(_at(15, minute, 30), "sql-prod-01", "DEBUG", "Checkpoint on 'Sales' done."))
        )
    io_msg = (
        "SQL Server has encountered 2 occurrence(s) of I/O requests taking longer than 15 seconds to "
        "complete on file [D:\\Data\\Orders.mdf] in database id 7."
    )
    docs.append((mssql, _errorlog(_at(15, 33), "sql-prod-03", "warning", io_msg)))
    stuck = "Process 0:0:0 (0x1a2c) appears to be non-yielding on Scheduler 3. Error 17883."
    docs.append((mssql, _errorlog(_at(15, 57), "sql-prod-03", "critical", stuck)))
    # yesterday: the same instance deadlocked too, outside the incident window
    old = (
        "Transaction (Process ID 77) was deadlocked on lock resources with another process and has "
        "been chosen as the deadlock victim. Rerun the transaction. Error 1205."
    )
    docs.append(("mssql-logs-2026.04.20", _errorlog("2026-04-20T10:00:00Z", "sql-prod-02", "error", old)))
    recovered = {"@timestamp": "2026-04-19T09:00:00Z", "instance_name": "sql-prod-04", "severity": "info"}
    docs.append(("mssql-logs-2026.04.19", recovered | {"message": "Recovery is complete."}))
    app = "app-logs-2026.04.21"
    for n, host in enumerate(["inv-api-1", "inv-api-2", "inv-api-3", "inv-api-4"]):
        for minute in range(n, 65, 5):
            hh, mm = 15 + minute // 60, minute % 60
            line = f"GET /api/v1/stock/SKU-{1000 + minute} 200 in {8 + n} ms"
            docs.append((app, _app(_at(hh, mm, 5), host, "INFO", line, "inventory-api")))
    for host in ["web-01", "web-02", "web-03"]:
        for minute in range(60):
            for second in (10, 40):
                docs.append((app, _app(_at(15, minute, second), host, "INFO", "GET / 200", "storefront")))
    for i in range(40):  # web-02's burst at 15:30
        line = (
            "upstream timed out (110: Connection timed out) while reading response header from "
            f"upstream, client: 10.1.2.{i}, server: shop.example.com"
        )
        docs.append((app, _app(_at(15, 30, i), "web-02", "ERROR", line, "storefront")))
    return docs


@pytest.fixture(scope="module")
def opensearch() -> Iterator[str]:
    """An osmem-server with the documents indexed; yields its URL."""
    try:
        from osmem_server import OsmemError, OsmemServer
    except ImportError:
        unavailable("osmem-server is not installed (pip install osmem-server)")
    try:
        started = time.monotonic()
        server = OsmemServer.start(japanese=False)
    except (OsmemError, OSError) as exc:
        unavailable(f"osmem-server did not start: {exc}")
    print(f"osmem-server {server.version} ready in {time.monotonic() - started:.2f} s")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            http.put("/app-logs-2026.04.21", json={"mappings": APP_MAPPING}).raise_for_status()
            http.put("/mssql-logs-2026.04.19", json={"mappings": OLD_MSSQL_MAPPING}).raise_for_status()
            lines = [
                f"{json.dumps({'index': {'_index': index}})}\n{json.dumps(doc)}\n"
                for index, doc in documents()
            ]
            resp = http.post(
                "/_bulk?refresh=true",
                content="".join(lines),
                headers={"Content-Type": "application/x-ndjson"},
            )
            resp.raise_for_status()
            assert not resp.json()["errors"], resp.text[:500]
        yield server.url
    finally:
        server.close()


def mssql_config(url: str, **over: Any) -> ElasticConfig:
    base: dict[str, Any] = {"name": "mssql-logs", "url": url, "flavor": "opensearch"}
    return ElasticConfig.model_validate(base | {"index_patterns": ["mssql-logs-*"]} | over)


def app_config(url: str, **over: Any) -> ElasticConfig:
    base: dict[str, Any] = {
        "name": "app-logs",
        "url": url,
        "flavor": "opensearch",
        "index_patterns": ["app-logs-*"],
    }
    ecs = {"severity_field": "log.level", "entity_fields": ["host.name", "service.name"]}
    return ElasticConfig.model_validate(base | ecs | over)


@pytest.fixture
def logs(opensearch: str) -> ElasticLogs:
    return ElasticLogs([mssql_config(opensearch), app_config(opensearch)])


def ctx(source: LogSource) -> ToolContext:
    now = END
    return ToolContext(
        sources=Sources(logs=source), now=now, start=START, end=END, history_start=now - timedelta(days=7)
    )


# --- search semantics ---------------------------------------------------------------------------


def test_is_a_log_source(logs: ElasticLogs) -> None:
    assert isinstance(logs, LogSource)


def test_search_normalises_hits_into_log_records(logs: ElasticLogs) -> None:
    found = logs.search(entities=["sql-prod-01"], start=START, end=END, min_severity="warning")
    assert [r.timestamp for r in found] == sorted(r.timestamp for r in found)
    assert {r.severity for r in found} == {"warning", "error"}  # "Warning" lower-cased
    (first,) = [r for r in found if "9002" in r.message][:1]
    assert first.index == "mssql-logs-2026.04.21"  # the hit's _index
    assert first.instance_name == "sql-prod-01" and first.host == "db-host-01"
    assert first.log_category == "errorlog"
    assert first.model_extra == {"process": "sqlservr", "spid": "spid61"}  # shipper fields kept
    assert sum("18456" in r.message for r in found) == 6 and sum("9002" in r.message for r in found) == 3


def test_ecs_documents_are_read_through_their_nested_fields(logs: ElasticLogs) -> None:
    (retry,) = logs.search(entities=["inv-api-3"], start=START, end=END, min_severity="warning")
    assert retry.host == "inv-api-3" and retry.severity == "warning"  # log.level "WARN"
    assert retry.log_category == "application"  # event.dataset
    assert retry.model_extra == {"service.name": "inventory-api"}
    assert retry.message.startswith("Retrying UpdateInventory after SqlException 1205")


def test_min_severity_is_a_floor_and_debug_is_everything(logs: ElasticLogs) -> None:
    def count(level: str) -> int:
        return len(logs.search(entities=["sql-prod-01"], start=START, end=END, min_severity=level))

    assert count("debug") == 3 + 6 + 4 + 4  # every document
    assert count("info") == 3 + 6 + 4  # "DEBUG" dropped, "information" counts as info
    assert count("warning") == 9 and count("error") == 3
    found = logs.search(entities=["sql-prod-03"], start=START, end=END, min_severity="critical")
    assert [r.severity for r in found] == ["critical"]


def test_entities_match_any_entity_field_case_insensitively(logs: ElasticLogs) -> None:
    upper = logs.search(entities=["SQL-PROD-02"], start=START, end=END)
    assert len(upper) == 4 and all(r.instance_name == "sql-prod-02" for r in upper)
    by_host = logs.search(entities=["db-host-03"], start=START, end=END)  # the host field, not the instance
    assert {r.instance_name for r in by_host} == {"sql-prod-03"}
    by_service = logs.search(entities=["inventory-api"], start=START, end=END, min_severity="warning")
    assert [r.host for r in by_service] == ["inv-api-3"]
    both = logs.search(entities=["sql-prod-02", "inv-api-3"], start=START, end=END, min_severity="warning")
    assert len(both) == 4  # three errors on the instance, one warning from the API host


def test_time_range_text_and_limit(logs: ElasticLogs) -> None:
    assert logs.search(entities=["sql-prod-02"], start=DAY - timedelta(days=1), end=START)[0].timestamp == (
        datetime(2026, 4, 20, 10, tzinfo=UTC)
    )
    victims = logs.search(entities=None, start=START, end=END, text="deadlock victim")
    assert len(victims) == 2 and all("Error 1205" in r.message for r in victims)
    latest = logs.search(entities=["web-02"], start=START, end=END, limit=3)
    assert [r.timestamp.strftime("%H:%M:%S") for r in latest] == ["15:58:40", "15:59:10", "15:59:40"]
    assert logs.search(entities=["no-such-host"], start=START, end=END) == []


def test_same_answers_as_replay_over_the_same_documents(logs: ElasticLogs) -> None:
    records = [r for _, r in _as_records()]
    replay = ReplayLogs(records)
    for entity, level in [("sql-prod-01", "warning"), ("sql-prod-02", "info"), ("web-02", "error")]:
        live = logs.search(entities=[entity], start=START, end=END, min_severity=level, limit=2000)
        want = replay.search(entities=[entity], start=START, end=END, min_severity=level, limit=2000)
        assert sorted((r.timestamp, r.severity, r.message) for r in live) == sorted(
            (r.timestamp, r.severity, r.message) for r in want
        )  # documents with the same timestamp come in either order


def _as_records() -> list[tuple[str, LogRecord]]:
    out = []
    for index, doc in documents():
        flat = {"timestamp": doc["@timestamp"], "index": index, "message": doc["message"]}
        flat |= {"instance_name": doc.get("instance_name"), "log_category": doc.get("log_category")}
        host = doc.get("host")
        flat["host"] = host["name"] if isinstance(host, dict) else host
        level = doc.get("severity") or doc["log"]["level"]
        flat["severity"] = {"information": "info", "warn": "warning"}.get(level.lower(), level.lower())
        out.append((index, LogRecord.model_validate(flat)))
    return out


# --- aggregations -------------------------------------------------------------------------------


def test_entities_aggregate_every_entity_field_across_mixed_mappings(logs: ElasticLogs) -> None:
    found = logs.entities()
    assert {"sql-prod-01", "sql-prod-02", "sql-prod-03", "db-host-01", "db-host-03"} <= found
    assert "sql-prod-04" in found  # only in the index whose template maps instance_name as keyword
    assert {"inv-api-1", "inv-api-4", "web-01", "web-03", "inventory-api", "storefront"} <= found


def test_signature_counts(logs: ElasticLogs) -> None:
    sigs = logs.signature_counts(entities=["sql-prod-01"], start=START, end=END, min_severity="warning")
    top = sigs[0]
    assert top.value.startswith("The transaction log for database 'Sales' is full") and top.count == 3
    assert top.severity == "error" and top.first_seen == DAY.replace(hour=15, minute=40)
    assert top.last_seen == DAY.replace(hour=15, minute=50)
    assert sum(s.count for s in sigs if "Login failed" in s.value) == 6
    # any keyword field; a cluster whose indices lack it contributes nothing
    by_category = logs.signature_counts(entities=None, start=START, end=END, field="log_category")
    assert [(s.value, s.count) for s in by_category] == [("errorlog", 3 + 6 + 3 + 2)]
    by_dataset = logs.signature_counts(entities=None, start=START, end=END, field="event.dataset")
    assert [(s.value, s.count, s.severity) for s in by_dataset] == [("application", 40 + 1, "error")]


def test_burst_histogram_finds_the_burst(logs: ElasticLogs) -> None:
    hist = logs.burst_histogram(
        entities=["web-02"], start=START, end=DAY.replace(hour=15, minute=59, second=59)
    )
    assert len(hist) == 60 and hist[0][0] == START  # every minute, empty or not
    peak = max(hist, key=lambda b: b[1])
    assert peak == (DAY.replace(hour=15, minute=30), 42)
    assert sorted({n for _, n in hist}) == [2, 42]
    errors = logs.burst_histogram(entities=["web-02"], start=START, end=END, min_severity="error")
    assert sum(n for _, n in errors) == 40


# --- the view tools end to end ------------------------------------------------------------------


def test_error_signatures_finds_the_1205_deadlock_like_replay(logs: ElasticLogs) -> None:
    live = error_signatures(ctx(logs), "sql-prod-02")
    deadlock = next(f for f in live.findings if f.kind == "deadlock")
    assert deadlock.title.startswith("2 deadlocks on sql-prod-02 (SQL Server error 1205)")
    assert "dbo.UpdateInventory" in deadlock.detail and "IX_StockLevels_Sku" in deadlock.detail
    assert "dbo.ReserveStock" in deadlock.detail
    replay = error_signatures(ctx(ReplayLogs(scenario_world("logs-deadlock-01").logs)), "sql-prod-02")
    assert [f.model_dump() for f in live.findings] == [f.model_dump() for f in replay.findings]
    assert live.evidence[0].rows == replay.evidence[0].rows


def test_log_bursts_view_over_elastic(logs: ElasticLogs) -> None:
    (finding,) = log_bursts(ctx(logs), "web-02").findings
    assert finding.kind == "log_burst" and finding.title.startswith(
        "Burst of 42 log messages on web-02 at 15:30"
    )


# --- flavors, failures, doctor ------------------------------------------------------------------


def test_compatibility_mode_against_opensearch_says_set_flavor_opensearch(opensearch: str) -> None:
    wrong = ElasticLogs([mssql_config(opensearch, flavor="elasticsearch")])
    with pytest.raises(ElasticError) as err:
        wrong.search(entities=["sql-prod-02"], start=START, end=END)
    assert err.value.status == 406 and "set `flavor: opensearch`" in str(err.value)
    (check,) = wrong.doctor()
    assert check.reachable and not check.ok and check.fix == OPENSEARCH_FIX
    assert "is not supported" in check.detail


@pytest.fixture(scope="module")
def es_proxy(opensearch: str) -> Iterator[str]:
    """Stand-in Elasticsearch 9 in front of osmem (see the module docstring); user elastic:changeme."""
    seen: list[dict[str, str]] = []

    class Handler(QuietHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(
                {"accept": self.headers.get("Accept", ""), "type": self.headers.get("Content-Type", "")}
            )
            want = "Basic " + base64.b64encode(b"elastic:changeme").decode()
            if self.headers.get("Authorization") != want:
                err = {"error": {"type": "security_exception", "reason": "unable to authenticate user"}}
                self.reply(401, json.dumps(err).encode(), {"Content-Type": "application/json"})
                return
            media = [self.headers.get("Accept", "")] + (
                [self.headers.get("Content-Type", "")] if body else []
            )
            if any(m != COMPAT for m in media):
                err = {"error": {"type": "media_type_header_exception", "reason": f"expected {COMPAT}"}}
                self.reply(400, json.dumps(err).encode(), {"Content-Type": "application/json"})
                return
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            resp = httpx.request(self.command, opensearch + self.path, content=body, headers=headers)
            out = {"Content-Type": COMPAT, "X-Elastic-Product": "Elasticsearch"}
            self.reply(resp.status_code, resp.content, out)

        do_GET = do_POST = do_PUT = _forward

    with LoopbackServer(Handler) as server:
        yield server.url


def test_elasticsearch_flavor_speaks_the_compatibility_media_type(es_proxy: str) -> None:
    """Stand-in: the compatibility path end to end (client headers, product check, parsing)."""
    cfg = mssql_config(es_proxy, flavor="elasticsearch", username="elastic", password="changeme")
    es = ElasticLogs([cfg])
    found = es.search(entities=["sql-prod-02"], start=START, end=END, min_severity="error")
    assert len(found) == 3 and "sql-prod-04" in es.entities()
    (check,) = es.doctor()
    assert check.ok and check.authenticated and check.permissions_ok, check
    bad = ElasticLogs([mssql_config(es_proxy, flavor="elasticsearch", username="elastic", password="nope")])
    with pytest.raises(ElasticError, match="authentication failed"):
        bad.entities()
    (check,) = bad.doctor()
    assert check.reachable and check.authenticated is False and "username/password" in check.fix


def test_opensearch_flavor_sends_credentials_on_the_plain_json_path(es_proxy: str) -> None:
    """Stand-in: the plain-JSON path carries Basic auth itself (it bypasses the client's headers)."""
    cfg = mssql_config(es_proxy, username="elastic", password="changeme")
    with pytest.raises(ElasticError) as err:  # the proxy insists on the compatibility media type
        ElasticLogs([cfg]).search(entities=None, start=START, end=END)
    assert err.value.status == 400  # past authentication: the credentials were sent


def test_doctor_reports_a_healthy_cluster_and_an_empty_pattern(opensearch: str) -> None:
    ok, empty = ElasticLogs(
        [mssql_config(opensearch), app_config(opensearch, index_patterns=["nginx-*"])]
    ).doctor()
    assert ok.ok and ok.source == "elastic:mssql-logs" and ok.kind == "logs" and ok.latency_ms is not None
    assert "opensearch" in ok.detail and "3 indices match mssql-logs-*" in ok.detail
    assert empty.reachable and empty.permissions_ok is False and "no index matches nginx-*" in empty.detail
    assert "index_patterns" in empty.fix


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_and_silent_clusters_fail_fast_with_a_fix() -> None:
    dead = ElasticLogs([mssql_config(f"http://user:secret@127.0.0.1:{_dead_port()}")])
    with pytest.raises(SourceError, match="cannot connect"):
        dead.search(entities=None, start=START, end=END)
    (check,) = dead.doctor()
    assert not check.reachable and "secret" not in check.target and "url" in check.fix
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cfg = mssql_config(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)
        logs = ElasticLogs([cfg], breaker_failures=2)
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(SourceError, match=r"no answer within 0\.5 s"):
                logs.search(entities=None, start=START, end=END)
            assert time.monotonic() - started < 3
        started = time.monotonic()
        with pytest.raises(SourceError, match="not called: circuit open after 2 timeouts"):
            logs.entities()
        assert time.monotonic() - started < 0.1  # the breaker answers, not the cluster
        (check,) = logs.doctor()  # the doctor still tries the cluster
        assert check.circuit == "open" and not check.reachable
        assert "searches: circuit open after 2 timeouts" in check.detail


def test_one_dead_cluster_is_isolated_and_noted(opensearch: str) -> None:
    both = ElasticLogs([mssql_config(opensearch), app_config(f"http://127.0.0.1:{_dead_port()}")])
    with collecting_notes() as notes:
        found = both.search(entities=["sql-prod-02"], start=START, end=END)
    assert len(found) == 4
    assert list(both.errors) == ["app-logs"] and "cannot connect" in both.errors["app-logs"]
    assert len(notes) == 1 and notes[0].startswith("logs from app-logs are missing")
