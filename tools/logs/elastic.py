"""Live log backend: search Elasticsearch or OpenSearch clusters through the official client, aggregate.

One ElasticCluster per endpoint (tools.logs.elastic_cluster: its calls, circuit and field names); the
queries and the reading of hits in tools.logs.elastic_query. This module fans each call out to every
cluster and merges what comes back.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from tools.estate import ElasticConfig
from tools.isolation import gather
from tools.logs.elastic_cluster import OPENSEARCH_FIX, ElasticCluster, ElasticError
from tools.logs.elastic_query import (
    LEVEL_WORDS,
    LEVELS,
    SignatureCount,
    from_epoch_ms,
    level_of,
    merge_counts,
)
from tools.resilience import CircuitBreaker
from tools.sources import LogSummary, MessageCount, SourceCheck, SourceError, public_url
from tools.world import LogRecord

__all__ = [  # the cluster and query names stay importable from here
    "LEVELS",
    "LEVEL_WORDS",
    "OPENSEARCH_FIX",
    "ElasticError",
    "ElasticLogs",
    "SignatureCount",
    "level_of",
    "public_url",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ElasticLogs:
    """LogSource over one or more Elasticsearch/OpenSearch clusters (`ElasticConfig` each).

    Same semantics as ReplayLogs: documents in [start, end] at or above `min_severity` (a document
    without a level counts as info), naming one of `entities` in any of the configured entity
    fields (case-insensitive), containing `text` as a phrase; the latest `limit`, oldest first.
    After `breaker_failures` calls in a row got no answer from a cluster, its circuit opens and calls
    fail at once for `breaker_reset_s`. With several clusters, one that fails is left out (its error
    kept in `errors` and noted for the current run) unless all fail, which raises
    SourceError.
    """

    def __init__(
        self,
        configs: list[ElasticConfig],
        *,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        if not configs:
            raise ValueError("ElasticLogs needs at least one ElasticConfig")
        self._clusters = [
            ElasticCluster(cfg, CircuitBreaker(f"elastic:{cfg.name}", breaker_failures, breaker_reset_s))
            for cfg in configs
        ]
        self.errors: dict[str, str] = {}

    def _each(self, what: str, call: Callable[[ElasticCluster], T]) -> list[T]:
        found = gather(
            [(c.name, functools.partial(call, c)) for c in self._clusters],
            f"elastic {what}",
            catch=(SourceError,),
            note_for=lambda name, reason: f"logs from {name} are missing: {reason}",
        )
        for name, _ in found.answers:
            self.errors.pop(name, None)
        self.errors.update(found.failures)
        if found.all_failed:
            if len(found.errors) == 1:
                raise next(iter(found.errors.values()))  # the cluster's own error (status, fix)
            raise SourceError("; ".join(found.failures.values()))
        return found.values

    def entities(self) -> set[str]:
        """Every value of the entity fields (terms aggregations, up to 1,000 per field)."""

        def values(cluster: ElasticCluster) -> set[str]:
            fields = cluster.cfg.entity_fields

            def build(names: dict[str, str]) -> dict[str, Any]:
                return {
                    f"e{i}": {"terms": {"field": names[f], "size": 1000}}
                    for i, f in enumerate(fields)
                    if f in names
                }

            found = cluster.aggregate(fields, build, {"match_all": {}})
            return {str(b["key"]) for aggs in found for agg in aggs.values() for b in agg.get("buckets", [])}

        return {v for values_ in self._each("entities", values) for v in values_ if v}

    def search(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str = "debug",
        text: str | None = None,
        limit: int = 500,
        terms: list[str] | None = None,
    ) -> list[LogRecord]:
        query = {
            "entities": entities,
            "start": start,
            "end": end,
            "min_severity": min_severity,
            "text": text,
            "terms": terms,
        }
        found = self._each("search", lambda c: c.search(limit=limit, **query))
        records = sorted((r for rs in found for r in rs), key=lambda r: r.timestamp)
        return records[-limit:] if limit > 0 else []

    def summarize(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str = "debug",
        terms: list[str] | None = None,
        size: int = 200,
    ) -> LogSummary:
        """Server-side aggregations over every matching document: the hit count, min/max timestamp,
        a terms aggregation per level and per entity field, and the `size` most frequent messages
        (the message's keyword form) each with its own min/max timestamp and levels."""

        def one(cluster: ElasticCluster) -> LogSummary:
            cfg = cluster.cfg
            msg, ts, sev = cfg.message_field, cfg.timestamp_field, cfg.severity_field
            query = cluster.query(
                entities=entities, start=start, end=end, min_severity=min_severity, text=None, terms=terms
            )
            fields = [msg, ts, sev, *cfg.entity_fields]

            def build(names: dict[str, str]) -> dict[str, Any]:
                aggs: dict[str, Any] = {"span": {"stats": {"field": names.get(ts, ts)}}}
                if sev in names:
                    aggs["levels"] = {"terms": {"field": names[sev], "size": 20}}
                    aggs["no_level"] = {"missing": {"field": names[sev]}}
                for i, f in enumerate(cfg.entity_fields):
                    if f in names:
                        aggs[f"entity{i}"] = {"terms": {"field": names[f], "size": 50}}
                if msg in names and ts in names:
                    sub: dict[str, Any] = {
                        "first": {"min": {"field": names[ts]}},
                        "last": {"max": {"field": names[ts]}},
                    }
                    if sev in names:
                        sub["levels"] = {"terms": {"field": names[sev], "size": 20}}
                    aggs["messages"] = {"terms": {"field": names[msg], "size": size}, "aggs": sub}
                return aggs

            out = LogSummary()
            for aggs in cluster.aggregate(fields, build, query):
                part = _summary_of(aggs, len(cfg.entity_fields))
                out = _merge_summaries(out, part, size)
            return out

        merged = LogSummary()
        for part in self._each("summarize", one):
            merged = _merge_summaries(merged, part, size)
        return merged

    def signature_counts(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str = "warning",
        field: str | None = None,
        size: int = 20,
    ) -> list[SignatureCount]:
        """The most frequent values of `field` (default: the whole message, through its keyword
        form, so messages longer than its ignore_above are not counted), with first/last seen and
        worst level, most frequent first."""

        def counts(cluster: ElasticCluster) -> list[SignatureCount]:
            cfg = cluster.cfg
            on, ts, sev = field or cfg.message_field, cfg.timestamp_field, cfg.severity_field
            query = cluster.query(
                entities=entities, start=start, end=end, min_severity=min_severity, text=None
            )

            def build(names: dict[str, str]) -> dict[str, Any]:
                if on not in names or ts not in names:
                    return {}
                sub: dict[str, Any] = {
                    "first": {"min": {"field": names[ts]}},
                    "last": {"max": {"field": names[ts]}},
                }
                if sev in names:
                    sub["levels"] = {"terms": {"field": names[sev], "size": 20}}
                return {"sig": {"terms": {"field": names[on], "size": size}, "aggs": sub}}

            out = []
            for aggs in cluster.aggregate([on, ts, sev], build, query):
                for b in aggs.get("sig", {}).get("buckets", []):
                    levels = [level_of(x["key"]) for x in b.get("levels", {}).get("buckets", [])]
                    out.append(
                        SignatureCount(
                            value=str(b["key"]),
                            count=int(b["doc_count"]),
                            first_seen=from_epoch_ms(b.get("first", {}).get("value")),
                            last_seen=from_epoch_ms(b.get("last", {}).get("value")),
                            severity=max(levels, key=LEVELS.index) if levels else None,
                        )
                    )
            return out

        merged: dict[str, SignatureCount] = {}
        for sig in (s for found in self._each("signature_counts", counts) for s in found):
            seen = merged.get(sig.value)
            merged[sig.value] = sig if seen is None else merge_counts(seen, sig)
        return sorted(merged.values(), key=lambda s: (-s.count, s.value))[:size]

    def burst_histogram(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        bucket_s: int = 60,
        min_severity: str = "debug",
    ) -> list[tuple[datetime, int]]:
        """Documents per `bucket_s` bucket from start to end (empty buckets as 0): a date_histogram."""

        def buckets(cluster: ElasticCluster) -> dict[int, int]:
            ts = cluster.cfg.timestamp_field
            query = cluster.query(
                entities=entities, start=start, end=end, min_severity=min_severity, text=None
            )
            bounds = {"min": int(start.timestamp() * 1000), "max": int(end.timestamp() * 1000)}

            def build(names: dict[str, str]) -> dict[str, Any]:
                histogram = {"field": names.get(ts, ts), "fixed_interval": f"{bucket_s}s", "min_doc_count": 0}
                return {"burst": {"date_histogram": histogram | {"extended_bounds": bounds}}}

            out: dict[int, int] = {}
            for aggs in cluster.aggregate([ts], build, query):
                for b in aggs.get("burst", {}).get("buckets", []):
                    out[int(b["key"])] = out.get(int(b["key"]), 0) + int(b["doc_count"])
            return out

        total: dict[int, int] = {}
        for found in self._each("burst_histogram", buckets):
            for key, count in found.items():
                total[key] = total.get(key, 0) + count
        return [(datetime.fromtimestamp(k / 1000, UTC), n) for k, n in sorted(total.items())]

    def doctor(self) -> list[SourceCheck]:
        return [cluster.doctor() for cluster in self._clusters]

    def close(self) -> None:
        for cluster in self._clusters:
            cluster.close()


def _summary_of(aggs: dict[str, Any], entity_fields: int) -> LogSummary:
    """One aggregation answer as a LogSummary (levels through `level_of`, documents without one as info)."""
    span = aggs.get("span") or {}
    out = LogSummary(total=int(span.get("count") or 0))
    out.first_seen, out.last_seen = from_epoch_ms(span.get("min")), from_epoch_ms(span.get("max"))
    for b in (aggs.get("levels") or {}).get("buckets", []):
        level = level_of(b["key"])
        out.by_severity[level] = out.by_severity.get(level, 0) + int(b["doc_count"])
    if missing := int((aggs.get("no_level") or {}).get("doc_count") or 0):
        out.by_severity["info"] = out.by_severity.get("info", 0) + missing
    for i in range(entity_fields):
        for b in (aggs.get(f"entity{i}") or {}).get("buckets", []):
            out.by_entity[str(b["key"])] = max(out.by_entity.get(str(b["key"]), 0), int(b["doc_count"]))
    counted = 0
    for b in (aggs.get("messages") or {}).get("buckets", []):
        levels = [level_of(x["key"]) for x in (b.get("levels") or {}).get("buckets", [])]
        out.messages.append(
            MessageCount(
                message=str(b["key"]),
                count=int(b["doc_count"]),
                first_seen=from_epoch_ms((b.get("first") or {}).get("value")),
                last_seen=from_epoch_ms((b.get("last") or {}).get("value")),
                severity=max(levels, key=LEVELS.index) if levels else None,
            )
        )
        counted += int(b["doc_count"])
    out.other = max(0, out.total - counted)
    return out


def _merge_summaries(a: LogSummary, b: LogSummary, size: int) -> LogSummary:
    """Two clusters' (or index groups') summaries as one: counts added, spans widened."""
    firsts = [t for t in (a.first_seen, b.first_seen) if t]
    lasts = [t for t in (a.last_seen, b.last_seen) if t]
    out = LogSummary(
        total=a.total + b.total, first_seen=min(firsts, default=None), last_seen=max(lasts, default=None)
    )
    for src in (a, b):
        for k, v in src.by_severity.items():
            out.by_severity[k] = out.by_severity.get(k, 0) + v
        for k, v in src.by_entity.items():
            out.by_entity[k] = out.by_entity.get(k, 0) + v
    merged: dict[str, SignatureCount] = {}
    for m in [*a.messages, *b.messages]:
        sig = SignatureCount(
            value=m.message,
            count=m.count,
            first_seen=m.first_seen,
            last_seen=m.last_seen,
            severity=m.severity,
        )
        merged[m.message] = sig if m.message not in merged else merge_counts(merged[m.message], sig)
    ranked = sorted(merged.values(), key=lambda s: (-s.count, s.value))
    out.messages = [
        MessageCount(
            message=s.value,
            count=s.count,
            first_seen=s.first_seen,
            last_seen=s.last_seen,
            severity=s.severity,
        )
        for s in ranked[:size]
    ]
    out.other = out.total - sum(m.count for m in out.messages)
    return out
