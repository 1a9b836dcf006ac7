"""Alert webhooks (Alertmanager, Grafana, Elastic Watcher, generic JSON) normalised into one `Alert`."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from tools.base import Severity
from tools.world import parse_ts

AlertSource = Literal["alertmanager", "grafana", "elastic_watcher", "generic"]
ALERT_SOURCES: tuple[str, ...] = get_args(AlertSource)

# Labels naming the affected thing, most specific first; `service`/`cmdb_ci` only when none of these.
_ENTITY_KEYS = (
    "instance_name",
    "instance",
    "host",
    "hostname",
    "db_instance",
    "db_instance_identifier",
    "device",
)
_FALLBACK_ENTITY_KEYS = ("service", "cmdb_ci")
_SEVERITY_SYNONYMS: dict[Severity, str] = {
    Severity.CRITICAL: "critical crit fatal emergency emerg alert high major error err disaster page "
    "p1 p2 sev1 sev2 1 2",
    Severity.WARNING: "warning warn medium moderate average minor p3 sev3 3",
    Severity.INFO: "info informational information notice low none ok debug p4 p5 sev4 sev5 4 5",
}
_SEVERITY_WORDS = {word: sev for sev, words in _SEVERITY_SYNONYMS.items() for word in words.split()}
_PORT_RE = re.compile(r"^\[(?P<v6>[^\]]+)\](?::\d+)?$|^(?P<host>[^:/]+):\d+$")

_EXPECTED = {
    "alertmanager": 'an Alertmanager webhook (version 4) body: {"alerts": [{"labels": {"alertname": ...}, '
    '"annotations": {...}, "startsAt": "<ISO-8601>", "fingerprint": ...}], "commonLabels": {...}}',
    "grafana": 'a Grafana unified-alerting webhook body: {"orgId": 1, "title": ..., "message": ..., '
    '"alerts": [{"labels": {"alertname": ...}, "annotations": {...}, "startsAt": "<ISO-8601>", '
    '"values": {...}}]}',
    "elastic_watcher": 'an Elastic Watcher webhook body, e.g. {{#toJson}}ctx{{/toJson}}: {"watch_id": ..., '
    '"execution_time" or "trigger": {"triggered_time": "<ISO-8601>"}, "metadata": {...}?, '
    '"payload": {"hits": {"hits": [{"_source": {"host": {"name": ...}}}]}}}',
    "generic": 'the generic alert JSON: {"message" or "title" or "summary": ..., '
    '"entity" or "host" or "instance": ..., "severity": "critical|warning|info"?, "labels": {...}?, '
    '"annotations": {...}?, "starts_at": "<ISO-8601>"?, "status": "firing|resolved"?, "fingerprint": ...?}',
}


class AlertError(ValueError):
    """A webhook body that no supported source fits, or that misses fields its source requires.

    `problems` lists each missing or malformed field by its path (e.g. ``alerts[0].startsAt``)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class AlertsResolved(AlertError):
    """Every alert in the body is resolved: it closes what it resolves and starts no investigation."""


class Alert(BaseModel):
    """One alert, whichever system raised it."""

    fingerprint: str
    source: AlertSource
    name: str = Field(description="the alert rule's name (Alertmanager/Grafana `alertname`)")
    status: str = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    severity: Severity = Severity.WARNING
    entity: str | None = Field(default=None, description="best guess of the affected instance/host/device")
    starts_at: datetime
    summary: str = ""
    values: dict[str, Any] = Field(default_factory=dict, description="Grafana query values, e.g. {'B': 96.2}")
    generator_url: str | None = None
    raw: dict[str, Any] = Field(
        default_factory=dict, description="the source's own record: one alerts[] item, or the whole body"
    )
    group_key: str | None = Field(default=None, description="Alertmanager's groupKey, when sent")
    notes: list[str] = Field(default_factory=list, description="what normalising assumed, e.g. a default")

    @property
    def alertname(self) -> str:
        return self.name


def labels_fingerprint(labels: dict[str, str]) -> str:
    """First 16 hex digits of SHA-256 over the sorted-keys JSON of the labels."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]


def normalize_severity(value: Any) -> Severity:
    """Map a source's severity word (``high``, ``P2``, ``warn``...) onto critical|warning|info.

    Unknown or missing severities count as warning: a fired alert is never silently dismissed."""
    if value is None:
        return Severity.WARNING
    return _SEVERITY_WORDS.get(str(value).strip().lower(), Severity.WARNING)


def strip_port(value: str) -> str:
    """``db-host-02:9100`` -> ``db-host-02``; ``[::1]:9100`` -> ``::1``; anything else unchanged."""
    m = _PORT_RE.match(value.strip())
    if not m:
        return value.strip()
    return m.group("v6") or m.group("host")


def guess_entity(*maps: dict[str, Any]) -> str | None:
    """The affected entity: the first instance/host/device-like key across `maps`, else service/cmdb_ci."""
    for keys in (_ENTITY_KEYS, _FALLBACK_ENTITY_KEYS):
        for mapping in maps:
            for key in keys:
                value = mapping.get(key)
                if value not in (None, ""):
                    return strip_port(str(value)) if key == "instance" else str(value).strip()
    return None


def detect_source(payload: Any) -> str:
    """Tell which system sent a webhook body from its shape."""
    if not isinstance(payload, dict):
        raise AlertError(f"alert payload must be a JSON object, got {type(payload).__name__}")
    if "watch_id" in payload:
        return "elastic_watcher"
    if "alerts" in payload:
        alerts = payload.get("alerts")
        items = alerts if isinstance(alerts, list) else []
        grafana_item = any(isinstance(a, dict) and ("values" in a or "valueString" in a) for a in items)
        if "orgId" in payload or grafana_item or ("title" in payload and "message" in payload):
            return "grafana"
        return "alertmanager"
    if any(k in payload for k in ("title", "summary", "message")) or any(
        k in payload for k in ("entity", "host", "instance")
    ):
        return "generic"
    raise AlertError(
        f"cannot tell which source sent this alert payload (keys: {', '.join(sorted(payload)) or 'none'}); "
        f"expected one of: {'; '.join(_EXPECTED.values())}"
    )


def normalize_alert(source: str | None, payload: Any, *, received_at: datetime | None = None) -> list[Alert]:
    """Turn one webhook body into alerts. `source` None or ``auto`` = :func:`detect_source`.

    `received_at` stands in for a generic alert's missing ``starts_at`` (default: now, UTC).
    Raises AlertError naming the source and every missing or malformed field."""
    if source in (None, "", "auto"):
        source = detect_source(payload)
    if source not in ALERT_SOURCES:
        raise AlertError(f"unknown alert source {source!r}; allowed: {', '.join(ALERT_SOURCES)}")
    if not isinstance(payload, dict):
        raise AlertError(f"{source} payload must be a JSON object, got {type(payload).__name__}")
    problems: list[str] = []
    if source in ("alertmanager", "grafana"):
        alerts = _from_grouped(source, payload, problems)
    elif source == "elastic_watcher":
        alerts = _from_watcher(payload, problems)
    else:
        alerts = _from_generic(payload, problems, received_at or datetime.now(UTC))
    if problems:
        raise AlertError(f"{source} payload: {'; '.join(problems)}. Expected {_EXPECTED[source]}", problems)
    return alerts


def alert_text(alert: Alert) -> str:
    """One line for the planner: name, severity, entity, summary, labels and annotations."""
    parts = [f"Alert {alert.name} ({alert.severity.value}, {alert.status})"]
    if alert.entity:
        parts.append(f"on {alert.entity}")
    text = " ".join(parts)
    if alert.summary:
        text += f": {alert.summary.rstrip('. ')}"
    if alert.labels:
        text += ". Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
    notes = {k: v for k, v in alert.annotations.items() if v and v != alert.summary}
    if notes:
        text += ". Annotations: " + ", ".join(f"{k}={v}" for k, v in sorted(notes.items()))
    if alert.values:
        text += ". Values: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.values.items()))
    return text


def _str_map(value: Any, path: str, problems: list[str], *, required: bool) -> dict[str, str]:
    if value is None:
        if required:
            problems.append(f"{path} is missing")
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path} must be an object of strings, got {type(value).__name__}")
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _timestamp(value: Any, path: str, problems: list[str]) -> datetime | None:
    if value in (None, ""):
        problems.append(f"{path} is missing")
        return None
    try:
        return parse_ts(value)
    except ValueError:
        problems.append(f"{path} is not an ISO-8601 timestamp: {value!r}")
        return None


def _from_grouped(source: str, payload: dict[str, Any], problems: list[str]) -> list[Alert]:
    items = payload.get("alerts")
    if items is None:
        problems.append("alerts is missing")
        return []
    if not isinstance(items, list) or not items:
        problems.append("alerts must be a non-empty list")
        return []
    common = _str_map(payload.get("commonLabels"), "commonLabels", problems, required=False)
    common_notes = _str_map(payload.get("commonAnnotations"), "commonAnnotations", problems, required=False)
    out: list[Alert] = []
    for i, item in enumerate(items):
        path = f"alerts[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{path} must be an object, got {type(item).__name__}")
            continue
        labels = _str_map(item.get("labels"), f"{path}.labels", problems, required=True)
        notes = {
            **common_notes,
            **_str_map(item.get("annotations"), f"{path}.annotations", problems, required=False),
        }
        name = labels.get("alertname") or common.get("alertname")
        if "labels" in item and not name:
            problems.append(f"{path}.labels.alertname is missing")
        starts_at = _timestamp(item.get("startsAt"), f"{path}.startsAt", problems)
        raw_values = item.get("values")
        values: dict[str, Any] = raw_values if isinstance(raw_values, dict) else {}
        if not name or starts_at is None or "labels" not in item:
            continue
        summary = (
            notes.get("summary")
            or notes.get("description")
            or notes.get("message")
            or (str(payload["message"]) if source == "grafana" and payload.get("message") else "")
            or name
        )
        out.append(
            Alert(
                fingerprint=str(item.get("fingerprint") or labels_fingerprint(labels)),
                source="grafana" if source == "grafana" else "alertmanager",
                name=name,
                status=str(item.get("status") or payload.get("status") or "firing"),
                labels=labels,
                annotations=notes,
                severity=normalize_severity(
                    labels.get("severity") or common.get("severity") or notes.get("severity")
                ),
                entity=guess_entity(labels, common, notes),
                starts_at=starts_at,
                summary=summary,
                values=values,
                generator_url=item.get("generatorURL"),
                raw=item,
                group_key=str(payload["groupKey"]) if payload.get("groupKey") else None,
            )
        )
    return out


def _hits_total(body: Any) -> int | None:
    hits = body.get("hits") if isinstance(body, dict) else None
    total = hits.get("total") if isinstance(hits, dict) else None
    if isinstance(total, dict):
        total = total.get("value")
    return total if isinstance(total, int) else None


_HIT_ENTITY_FIELDS = (
    "host.name",
    "host.hostname",
    "hostname",
    "host",
    "instance_name",
    "instance",
    "db_instance",
    "device",
    "service.name",
    "service",
)
MAX_WATCHER_ENTITIES = 20


def _flat(doc: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict):
                out.update(_flat(v, key))
            out[key] = v
    return out


def _hit_entities(body: Any) -> list[str]:
    """Distinct entities named by the hits of a watch's search payload (`_source.host.name` ...)."""
    hits = body.get("hits") if isinstance(body, dict) else None
    items = hits.get("hits") if isinstance(hits, dict) else None
    found: list[str] = []
    for hit in items if isinstance(items, list) else []:
        src = _flat(hit.get("_source")) if isinstance(hit, dict) else {}
        for key in _HIT_ENTITY_FIELDS:
            value = src.get(key)
            if isinstance(value, str | int) and str(value).strip():
                name = strip_port(str(value)) if key == "instance" else str(value).strip()
                if name not in found:
                    found.append(name)
                break
    return found[:MAX_WATCHER_ENTITIES]


def _from_watcher(payload: dict[str, Any], problems: list[str]) -> list[Alert]:
    """The tool's own shape ({watch_id, trigger_time, metadata}) or Watcher's real execution context
    ({{#toJson}}ctx{{/toJson}}: watch_id, execution_time, trigger.triggered_time, payload.hits)."""
    watch_id = payload.get("watch_id")
    if not watch_id:
        problems.append("watch_id is missing")
    trigger = payload.get("trigger_time")
    where = "trigger_time"
    for key in ("trigger", "trigger_event"):
        if trigger is None and isinstance(payload.get(key), dict):
            trigger, where = payload[key].get("triggered_time"), f"{key}.triggered_time"
    if trigger is None and payload.get("execution_time"):
        trigger, where = payload.get("execution_time"), "execution_time"
    if trigger is None:
        where = "trigger.triggered_time (or execution_time)"
    starts_at = _timestamp(trigger, where, problems)
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, dict):
        problems.append(f"metadata must be an object, got {type(metadata).__name__}")
        metadata = {}
    if not watch_id or starts_at is None:
        return []
    name = str(metadata.get("name") or watch_id)
    named = guess_entity(metadata)
    entities: list[str | None] = [named] if named else list(_hit_entities(payload.get("payload")))
    notes: list[str] = []
    if not named and len(entities) > 1:
        notes.append(f"the watch's hits name {len(entities)} entities: {', '.join(e for e in entities if e)}")
    if not entities:
        entities = [None]
    labels = {"alertname": name, "watch_id": str(watch_id)}
    labels.update({str(k): str(v) for k, v in metadata.items() if isinstance(v, str | int | float | bool)})
    annotations = {"condition": str(payload["condition"])} if payload.get("condition") else {}
    total = _hits_total(payload.get("payload"))
    out = []
    for entity in entities:
        summary = str(metadata.get("summary") or name)
        if entity and entity not in summary:
            summary += f" on {entity}"
        if total is not None:
            summary += f" ({total} hits)"
        key = f"{watch_id}|{entity or ''}"
        out.append(
            Alert(
                fingerprint=hashlib.sha256(key.encode()).hexdigest()[:16],
                source="elastic_watcher",
                name=name,
                status=str(metadata.get("status") or "firing"),
                labels={**labels, **({"entity": entity} if entity and not named else {})},
                annotations=annotations,
                severity=normalize_severity(metadata.get("severity")),
                entity=entity,
                starts_at=starts_at,
                summary=summary,
                raw=payload,
                notes=notes,
            )
        )
    return out


def _from_generic(payload: dict[str, Any], problems: list[str], received_at: datetime) -> list[Alert]:
    title = payload.get("title") or payload.get("summary") or payload.get("message")
    if not title:
        problems.append("message (or title or summary) is missing")
    assumed: list[str] = []
    if payload.get("severity") in (None, ""):
        assumed.append("no severity was given: treated as warning")
    entity_value = payload.get("entity") or payload.get("host") or payload.get("instance")
    if not entity_value:
        problems.append("entity (or host or instance) is missing")
    labels = _str_map(payload.get("labels"), "labels", problems, required=False)
    notes = _str_map(payload.get("annotations"), "annotations", problems, required=False)
    starts_at = received_at
    if payload.get("starts_at") not in (None, ""):
        starts_at = _timestamp(payload.get("starts_at"), "starts_at", problems) or received_at
    if problems:
        return []
    entity = strip_port(str(entity_value)) if not payload.get("entity") else str(entity_value)
    name = str(labels.get("alertname") or title)
    labels.setdefault("alertname", name)
    labels.setdefault("entity", entity)
    summary = str(payload.get("summary") or payload.get("message") or title)
    if payload.get("description"):
        notes.setdefault("description", str(payload["description"]))
    return [
        Alert(
            fingerprint=str(payload.get("fingerprint") or labels_fingerprint(labels)),
            source="generic",
            name=name,
            status=str(payload.get("status") or "firing"),
            labels=labels,
            annotations=notes,
            severity=normalize_severity(payload.get("severity")),
            entity=entity,
            starts_at=starts_at,
            summary=summary,
            raw=payload,
            notes=assumed,
        )
    ]
