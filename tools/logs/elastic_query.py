"""Elasticsearch/OpenSearch queries: field names from mappings, the search filter, hits as LogRecords."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from tools.estate import ElasticConfig
from tools.world import LogRecord

LEVELS = ("debug", "info", "warning", "error", "critical")
LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "debug": ("debug", "trace", "verbose"),
    "info": ("info", "information", "informational", "notice"),
    "warning": ("warning", "warn"),
    "error": ("error", "err", "severe"),
    "critical": ("critical", "crit", "fatal", "emergency", "emerg", "alert", "panic"),
}
_LEVEL_OF = {word: level for level, words in LEVEL_WORDS.items() for word in words}
_TEXT_TYPES = {"text", "match_only_text", "annotated_text"}
_RECORD_FIELDS = set(LogRecord.model_fields)


class SignatureCount(BaseModel):
    """One value of a field (by default the whole message) with its count and time span."""

    value: str
    count: int
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    severity: str | None = None  # the worst level seen with it


def level_of(value: Any) -> str:
    """A shipper's level word (``ERROR``, ``Warn``, ``fatal``) as one of LEVELS; unknown is info."""
    return _LEVEL_OF.get(str(value or "").strip().lower(), "info")


def _spellings(levels: Iterable[str]) -> list[str]:
    words = [w for level in levels for w in LEVEL_WORDS[level]]
    return sorted({form for w in words for form in (w, w.upper(), w.capitalize())})


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def from_epoch_ms(value: Any) -> datetime | None:
    """An aggregation's or sort key's epoch milliseconds as a UTC datetime (None stays None)."""
    return None if value is None else datetime.fromtimestamp(float(value) / 1000, UTC)


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flatten(value, f"{name}.")
        else:
            out[name] = value
    return out


def _pop_first(flat: dict[str, Any], names: Iterable[str]) -> Any:
    for name in names:
        if flat.get(name) not in (None, ""):
            return flat.pop(name)
    return None


@dataclass
class FieldNames:
    """Per index, the aggregatable name of each logical field (``host.keyword`` for a text ``host``)."""

    per_index: dict[str, dict[str, str]]
    read_at: float

    def names(self, field: str) -> list[str]:
        """Every concrete name the field has somewhere: what a filter must try."""
        found = sorted({m[field] for m in self.per_index.values() if field in m})
        return found or [field]

    def targets(self, patterns: str, fields: list[str]) -> list[tuple[str, dict[str, str]]]:
        """(index expression, field -> name) groups within which each field has one name."""
        groups: dict[tuple[str | None, ...], list[str]] = {}
        for index, mapped in self.per_index.items():
            groups.setdefault(tuple(mapped.get(f) for f in fields), []).append(index)
        if len(groups) == 1:
            ((key, _),) = groups.items()
            return [(patterns, {f: n for f, n in zip(fields, key, strict=True) if n})]
        return [
            (",".join(sorted(indices)), {f: n for f, n in zip(fields, key, strict=True) if n})
            for key, indices in groups.items()
        ]


def _aggregatable(name: str, mapping: dict[str, Any]) -> str | None:
    kind = mapping.get("type")
    if kind not in _TEXT_TYPES:
        return name if kind else None
    subs = mapping.get("fields") or {}
    keyword = next((sub for sub, m in subs.items() if m.get("type") == "keyword"), None)
    return f"{name}.{keyword}" if keyword else None


def field_names(resp: dict[str, Any], wanted: list[str], read_at: float) -> FieldNames:
    """The aggregatable names of the `wanted` fields, per index, from a ``_mapping/field`` answer."""
    per_index: dict[str, dict[str, str]] = {}
    for index, entry in resp.items():
        mapped: dict[str, str] = {}
        for field_name, spec in (entry.get("mappings") or {}).items():
            leaf: dict[str, Any] = next(iter((spec.get("mapping") or {}).values()), {})
            if field_name in wanted and (name := _aggregatable(field_name, leaf)):
                mapped[field_name] = name
        per_index[index] = mapped
    return FieldNames(per_index, read_at)


def build_query(
    cfg: ElasticConfig,
    fields: FieldNames,
    *,
    entities: list[str] | None,
    start: datetime,
    end: datetime,
    min_severity: str,
    text: str | None,
    terms: list[str] | None = None,
) -> dict[str, Any]:
    """The bool filter: the window, any entity field naming an entity, a level floor, a phrase, and
    any one of `terms` as a phrase in the message."""
    window = {"gte": _iso(start), "lte": _iso(end), "format": "strict_date_optional_time"}
    must: list[dict[str, Any]] = [{"range": {cfg.timestamp_field: window}}]
    must_not: list[dict[str, Any]] = []
    if entities:
        names = [n for f in cfg.entity_fields for n in fields.names(f)]
        should = [
            {"term": {name: {"value": e, "case_insensitive": True}}} for name in names for e in entities
        ]
        must.append({"bool": {"should": should, "minimum_should_match": 1}})
    floor = LEVELS.index(min_severity) if min_severity in LEVELS else 0
    severity_names = fields.names(cfg.severity_field)
    if floor == LEVELS.index("info"):  # documents without a level count as info
        below = _spellings(LEVELS[:floor])
        must_not += [{"terms": {name: below}} for name in severity_names]
    elif floor > LEVELS.index("info"):
        allowed = _spellings(LEVELS[floor:])
        levels = [{"terms": {name: allowed}} for name in severity_names]
        must.append({"bool": {"should": levels, "minimum_should_match": 1}})
    if text:
        must.append({"match_phrase": {cfg.message_field: text}})
    if terms:
        phrases = [{"match_phrase": {cfg.message_field: t}} for t in terms if t]
        must.append({"bool": {"should": phrases, "minimum_should_match": 1}})
    return {"bool": {"filter": must, "must_not": must_not}}


def to_record(cfg: ElasticConfig, hit: dict[str, Any]) -> LogRecord:
    """A hit as a LogRecord: known fields by the configured names, everything else kept flat."""
    flat = _flatten(hit.get("_source") or {})
    stamp = _pop_first(flat, (cfg.timestamp_field, "@timestamp", "timestamp"))
    if stamp is None:
        stamp = from_epoch_ms((hit.get("sort") or [None])[0])
    message = _pop_first(flat, (cfg.message_field, "message", "log.original", "event.original"))
    severity = _pop_first(flat, (cfg.severity_field, "log.level", "level", "severity"))
    host = _pop_first(flat, ("host", "host.name", "host.hostname"))
    known = {
        "timestamp": stamp,
        "index": hit.get("_index"),
        "instance_name": _pop_first(flat, ("instance_name",)),
        "host": None if host is None else str(host),
        "severity": level_of(severity) if severity is not None else "info",
        "log_category": _pop_first(flat, ("log_category", "event.dataset", "log.logger")),
        "message": "" if message is None else str(message),
    }
    extra = {(f"source.{k}" if k in _RECORD_FIELDS else k): v for k, v in flat.items()}
    return LogRecord.model_validate({**extra, **known})


def merge_counts(a: SignatureCount, b: SignatureCount) -> SignatureCount:
    """One value's counts from two clusters as one: summed, the wider span, the worse level."""
    firsts = [t for t in (a.first_seen, b.first_seen) if t]
    lasts = [t for t in (a.last_seen, b.last_seen) if t]
    levels = [lv for lv in (a.severity, b.severity) if lv]
    return SignatureCount(
        value=a.value,
        count=a.count + b.count,
        first_seen=min(firsts) if firsts else None,
        last_seen=max(lasts) if lasts else None,
        severity=max(levels, key=LEVELS.index) if levels else None,
    )
