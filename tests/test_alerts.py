"""Alert webhook normalisation for every supported source."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from graphs.alerts import (
    AlertError,
    alert_text,
    detect_source,
    labels_fingerprint,
    normalize_alert,
    strip_port,
)
from tools.base import Severity

SHARED = Path(__file__).resolve().parents[2].joinpath("shared")
EXAMPLES = SHARED / "scenarios" / "examples"
OPENSRE = SHARED / "external" / "opensre-rds-postgres"


def _alert_block(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)["input"]["alert"]


@pytest.mark.parametrize(
    ("path", "source", "name", "entity", "severity", "fingerprint", "starts_at"),
    [
        (
            EXAMPLES / "disk-forecast-01.yaml",
            "alertmanager",
            "DiskSpaceLow",
            "db-host-02",
            Severity.WARNING,
            "5f3c1a2b9d8e7f60",
            "2026-05-10T07:55:00+00:00",
        ),
        (
            EXAMPLES / "knowledge-tempdb-01.yaml",
            "grafana",
            "TempdbAlmostFull",
            "sql-prod-03",
            Severity.CRITICAL,
            "9a8b7c6d5e4f3a21",
            "2026-02-14T03:12:00+00:00",
        ),
        (
            EXAMPLES / "logs-deadlock-01.yaml",
            "elastic_watcher",
            "SQL deadlocks above threshold",
            "sql-prod-02",
            Severity.CRITICAL,  # metadata.severity "high"
            None,  # hash of watch_id + entity, checked below
            "2026-04-21T16:04:30+00:00",
        ),
        (
            OPENSRE / "opensre-rds-001-replication-lag.yaml",
            "grafana",
            "RDSReplicationLagHigh",
            "payments-prod",  # from the db_instance annotation, not the generic `service: rds` label
            Severity.CRITICAL,
            "1a36c4ea740cbe4a",
            "2026-03-26T11:35:00+00:00",
        ),
    ],
)
def test_example_payloads(
    path: Path,
    source: str,
    name: str,
    entity: str,
    severity: Severity,
    fingerprint: str | None,
    starts_at: str,
) -> None:
    block = _alert_block(path)
    assert block["source"] == source
    assert detect_source(block["payload"]) == source
    alerts = normalize_alert(source, block["payload"])
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.source == source
    assert alert.name == alert.alertname == name
    assert alert.entity == entity
    assert alert.severity == severity
    assert alert.status == "firing"
    assert alert.starts_at == datetime.fromisoformat(starts_at)
    if fingerprint is not None:
        assert alert.fingerprint == fingerprint
    assert alert.summary
    text = alert_text(alert)
    assert name in text and entity in text and alert.summary.rstrip(". ") in text


def test_watcher_fingerprint_is_stable_and_entity_specific() -> None:
    payload = _alert_block(EXAMPLES / "logs-deadlock-01.yaml")["payload"]
    first = normalize_alert("elastic_watcher", payload)[0]
    assert normalize_alert("elastic_watcher", copy.deepcopy(payload))[0].fingerprint == first.fingerprint
    assert len(first.fingerprint) == 16
    other = copy.deepcopy(payload)
    other["metadata"]["instance_name"] = "sql-prod-09"
    assert normalize_alert("elastic_watcher", other)[0].fingerprint != first.fingerprint
    assert "14 hits" in first.summary


def test_every_opensre_alert_normalises_with_an_instance() -> None:
    files = sorted(OPENSRE.glob("*.yaml"))
    assert len(files) == 15
    for path in files:
        block = _alert_block(path)
        (alert,) = normalize_alert(None, block["payload"])
        assert alert.source == "grafana"
        assert alert.entity and alert.entity.endswith("-prod"), (path.name, alert.entity)
        # the converter computed these fingerprints exactly as we do when the source has none
        assert alert.fingerprint == labels_fingerprint(alert.labels)


def test_fingerprint_from_labels_when_missing() -> None:
    payload = copy.deepcopy(_alert_block(EXAMPLES / "disk-forecast-01.yaml")["payload"])
    del payload["alerts"][0]["fingerprint"]
    (alert,) = normalize_alert("alertmanager", payload)
    assert alert.fingerprint == labels_fingerprint(alert.labels)
    assert alert.fingerprint != "5f3c1a2b9d8e7f60"


def test_prometheus_instance_port_is_stripped() -> None:
    payload = {
        "version": "4",
        "status": "resolved",
        "alerts": [
            {
                "labels": {"alertname": "NodeDown", "instance": "db-host-07:9100", "severity": "page"},
                "startsAt": "2026-01-01T00:00:00Z",
                "status": "resolved",
            },
            {
                "labels": {"alertname": "NodeDown", "instance": "[fd00::7]:9100"},
                "startsAt": "2026-01-01T00:00:00Z",
            },
        ],
    }
    first, second = normalize_alert("alertmanager", payload)
    assert (first.entity, first.severity, first.status) == ("db-host-07", Severity.CRITICAL, "resolved")
    assert (second.entity, second.severity) == ("fd00::7", Severity.WARNING)
    assert strip_port("sql-prod-01") == "sql-prod-01"


def test_missing_fields_are_all_named() -> None:
    payload = {
        "alerts": [
            {"annotations": {}, "startsAt": "2026-01-01T00:00:00Z"},
            {"labels": {"severity": "warning"}},
            {"labels": {"alertname": "X"}, "startsAt": "yesterday"},
        ]
    }
    with pytest.raises(AlertError) as info:
        normalize_alert("alertmanager", payload)
    message = str(info.value)
    assert message.startswith("alertmanager payload:")
    assert "alerts[0].labels is missing" in message
    assert "alerts[1].labels.alertname is missing" in message
    assert "alerts[1].startsAt is missing" in message
    assert "alerts[2].startsAt is not an ISO-8601 timestamp: 'yesterday'" in message
    assert "Expected an Alertmanager webhook" in message


@pytest.mark.parametrize(
    ("source", "payload", "missing"),
    [
        ("alertmanager", {"status": "firing"}, ["alerts is missing"]),
        ("grafana", {"orgId": 1, "alerts": []}, ["alerts must be a non-empty list"]),
        (
            "elastic_watcher",
            {"metadata": {"host": "h"}},
            ["watch_id is missing", "trigger.triggered_time (or execution_time) is missing"],
        ),
        (
            "generic",
            {"labels": {"team": "dba"}},
            ["message (or title or summary) is missing", "entity (or host or instance) is missing"],
        ),
    ],
)
def test_missing_required_fields(source: str, payload: dict[str, Any], missing: list[str]) -> None:
    with pytest.raises(AlertError) as info:
        normalize_alert(source, payload)
    assert str(info.value).startswith(f"{source} payload:")
    for phrase in missing:
        assert phrase in str(info.value)


def test_generic_alert() -> None:
    received = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    payload = {
        "title": "Replication broken",
        "severity": "P2",
        "host": "pg-02:5432",
        "labels": {"team": "dba"},
    }
    assert detect_source(payload) == "generic"
    (alert,) = normalize_alert("generic", payload, received_at=received)
    assert (alert.name, alert.entity, alert.severity) == ("Replication broken", "pg-02", Severity.CRITICAL)
    assert alert.starts_at == received
    assert alert.labels == {"team": "dba", "alertname": "Replication broken", "entity": "pg-02"}
    assert alert.fingerprint == labels_fingerprint(alert.labels)
    (with_time,) = normalize_alert(
        "generic", {**payload, "starts_at": "2026-03-04T09:00:00Z", "severity": "low"}, received_at=received
    )
    assert with_time.starts_at == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    assert with_time.severity == Severity.INFO


def test_detect_source() -> None:
    assert detect_source({"watch_id": "w", "trigger_time": "2026-01-01T00:00:00Z"}) == "elastic_watcher"
    assert detect_source({"version": "4", "alerts": [{"labels": {}}]}) == "alertmanager"
    assert detect_source({"orgId": 1, "alerts": []}) == "grafana"
    assert detect_source({"alerts": [{"labels": {}, "values": {"A": 1}}]}) == "grafana"
    assert detect_source({"summary": "disk full", "entity": "db1", "severity": "warning"}) == "generic"
    with pytest.raises(AlertError, match="cannot tell which source"):
        detect_source({"foo": 1})
    with pytest.raises(AlertError, match="unknown alert source 'nagios'"):
        normalize_alert("nagios", {"foo": 1})
    with pytest.raises(AlertError, match="must be a JSON object"):
        normalize_alert(None, ["not", "a", "dict"])
