"""Live log backend: search Elasticsearch or OpenSearch through the official client, with aggregations.

Elasticsearch is spoken to as the 9.x client does by default, with its compatibility media type
(``application/vnd.elasticsearch+json; compatible-with=9``) and its product check. OpenSearch
rejects that media type (406), and the client rewrites every ``application/json`` header into it
and refuses answers without ``X-Elastic-Product``, so ``flavor: opensearch`` sends plain JSON
through the same client's transport (node pool, TLS, timeouts), below those two steps. Plain JSON
works against Elasticsearch too.

Index mappings are read per cluster (``_mapping/field``) and re-read every few minutes: filters and
aggregations use a field's keyword form (``host`` when mapped as keyword, ``host.keyword`` under
dynamic mapping), and indices that disagree are aggregated separately.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from elasticsearch.exceptions import HTTP_EXCEPTIONS
from pydantic import BaseModel

from tools.estate import ElasticConfig
from tools.resilience import CircuitBreaker, CircuitOpen
from tools.sources import SourceCheck, SourceError
from tools.world import LogRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

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
_JSON = {"accept": "application/json", "content-type": "application/json"}
_MAX_HITS = 10_000  # index.max_result_window's default
_MAPPING_TTL_S = 300.0
_RECORD_FIELDS = set(LogRecord.model_fields)
OPENSEARCH_FIX = (
    "this server looks like OpenSearch, which rejects the Elasticsearch client's compatibility "
    "media type: set `flavor: opensearch` for this endpoint"
)


class ElasticError(SourceError):
    """A cluster could not answer; `status` is the HTTP status when there was one, `fix` what to do."""

    def __init__(
        self, message: str, *, fix: str = "", status: int | None = None, kind: str | None = None
    ) -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.fix = fix
        self.status = status
        self.kind = kind or ("server error" if status is not None and status >= 500 else None)


def _counts_against_circuit(exc: BaseException) -> str | None:
    """No answer (timeout, refused, TLS) or a 5xx counts against a cluster's circuit; 4xx are answers."""
    return exc.kind if isinstance(exc, ElasticError) else None


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


def public_url(url: str) -> str:
    """The URL without user:password, for checks and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _from_epoch_ms(value: Any) -> datetime | None:
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


def _auth_headers(cfg: ElasticConfig) -> dict[str, str]:
    if cfg.api_key is not None:
        return {"authorization": f"ApiKey {cfg.api_key.get_secret_value()}"}
    if cfg.username:
        secret = cfg.password.get_secret_value() if cfg.password else ""
        token = base64.b64encode(f"{cfg.username}:{secret}".encode()).decode()
        return {"authorization": f"Basic {token}"}
    return {}


def _reason(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            cause = (error.get("root_cause") or [error])[0]
            return f"{cause.get('type', '')}: {cause.get('reason', '')}".strip(": ")
        return str(error)
    return str(body)[:300]


@dataclass
class _Fields:
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


class _Cluster:
    """One Elasticsearch or OpenSearch endpoint with its index patterns and field names."""

    def __init__(self, cfg: ElasticConfig, breaker: CircuitBreaker) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.breaker = breaker
        self.patterns = ",".join(quote(p, safe="*,-_.+") for p in cfg.index_patterns)
        self._auth = _auth_headers(cfg)
        self._client = Elasticsearch(
            cfg.url,
            headers=self._auth,
            verify_certs=cfg.verify_tls,
            ssl_show_warn=cfg.verify_tls,
            request_timeout=cfg.timeout_s,
            max_retries=0,
            retry_on_timeout=False,
        )
        self._fields: _Fields | None = None
        wanted = [*cfg.entity_fields, cfg.severity_field, cfg.message_field, cfg.timestamp_field]
        self._wanted = list(dict.fromkeys([*wanted, "log_category"]))

    # --- HTTP ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        guarded: bool = True,
    ) -> Any:
        """One API call through the circuit breaker (`doctor` goes around it); every failure becomes
        an ElasticError that says what to fix."""
        if not guarded:
            return self._call(method, path, params, body)
        try:
            return self.breaker.call(lambda: self._call(method, path, params, body), _counts_against_circuit)
        except CircuitOpen as exc:
            where = f"{self.cfg.flavor} {self.name} at {public_url(self.cfg.url)}"
            fix = "its last calls got no answer; `opscopilot doctor` checks it now"
            raise ElasticError(f"{where} not called: {exc}", fix=fix) from None

    def _call(self, method: str, path: str, params: dict[str, Any] | None, body: Any) -> Any:
        try:
            if self.cfg.flavor == "opensearch":
                return self._plain_json(method, path, params, body)
            headers = _JSON if body is not None else {"accept": _JSON["accept"]}
            return self._client.perform_request(method, path, params=params, headers=headers, body=body).body
        except (ApiError, TransportError) as exc:
            raise self._failure(exc) from None

    def _plain_json(self, method: str, path: str, params: dict[str, Any] | None, body: Any) -> Any:
        target = path
        if params:
            target += "?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        headers = {**self._auth, **(_JSON if body is not None else {"accept": _JSON["accept"]})}
        meta, data = self._client.transport.perform_request(
            method,
            target,
            headers=headers,
            body=body,
            request_timeout=self.cfg.timeout_s,
            max_retries=0,
            retry_on_timeout=False,
        )
        if not 200 <= meta.status < 300:
            raise HTTP_EXCEPTIONS.get(meta.status, ApiError)(message=_reason(data), meta=meta, body=data)
        return data

    def _failure(self, exc: Exception) -> ElasticError:
        cfg = self.cfg
        where = f"{cfg.flavor} {cfg.name} at {public_url(cfg.url)}"
        if isinstance(exc, UnsupportedProductError):
            return ElasticError(
                f"{where}: not Elasticsearch (no X-Elastic-Product header)", fix=OPENSEARCH_FIX
            )
        if isinstance(exc, ApiError):
            status, reason = exc.meta.status, _reason(exc.body)
            if status == 406 or ("compatible-with" in reason and "not supported" in reason):
                return ElasticError(f"{where}: {status} {reason}", fix=OPENSEARCH_FIX, status=status)
            if status == 401:
                fix = "check username/password or api_key for this endpoint"
                return ElasticError(f"{where}: authentication failed (401)", fix=fix, status=status)
            if status == 403:
                fix = f"grant the user `read` and `view_index_metadata` on {', '.join(cfg.index_patterns)}"
                return ElasticError(f"{where}: permission denied (403): {reason}", fix=fix, status=status)
            return ElasticError(f"{where}: HTTP {status}: {reason}", status=status)
        if isinstance(exc, ConnectionTimeout):
            fix = "check the cluster's health and load, or raise timeout_s if it is only slow"
            return ElasticError(f"{where}: no answer within {cfg.timeout_s:g} s", fix=fix, kind="timeout")
        if isinstance(exc, TlsError):
            fix = "check the server certificate (verify_tls: false only for a test cluster)"
            return ElasticError(f"{where}: TLS failed: {exc}", fix=fix, kind="TLS failure")
        if isinstance(exc, TransportConnectionError):
            fix = "check the url (scheme, host, port) and that the cluster is up and reachable from here"
            return ElasticError(f"{where}: cannot connect", fix=fix, kind="connection failure")
        return ElasticError(f"{where}: {type(exc).__name__}: {exc}")

    def _search(self, target: str, body: dict[str, Any], guarded: bool = True) -> dict[str, Any]:
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        path = f"/{target}/_search"
        resp: dict[str, Any] = self.request("POST", path, params=params, body=body, guarded=guarded)
        shards = resp.get("_shards") or {}
        if shards.get("failed"):
            reasons = {_reason(f.get("reason")) for f in shards.get("failures", [])}
            if not shards.get("successful"):
                raise ElasticError(f"{self.name}: every shard failed: {'; '.join(sorted(reasons))}")
            log.warning("elastic %s: %s shards failed: %s", self.name, shards["failed"], sorted(reasons))
        return resp

    # --- mappings and queries -----------------------------------------------------------------

    def fields(self, also: Iterable[str] = ()) -> _Fields:
        """The field names per index (re-read after a while, or when new fields are asked for)."""
        if new := [f for f in also if f not in self._wanted]:
            self._wanted += new
            self._fields = None
        if self._fields is not None and time.monotonic() - self._fields.read_at < _MAPPING_TTL_S:
            return self._fields
        path = f"/{self.patterns}/_mapping/field/{','.join(quote(f, safe='@._-') for f in self._wanted)}"
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        resp = self.request("GET", path, params=params) or {}
        per_index: dict[str, dict[str, str]] = {}
        for index, entry in resp.items():
            mapped: dict[str, str] = {}
            for field_name, spec in (entry.get("mappings") or {}).items():
                leaf: dict[str, Any] = next(iter((spec.get("mapping") or {}).values()), {})
                if field_name in self._wanted and (name := _aggregatable(field_name, leaf)):
                    mapped[field_name] = name
            per_index[index] = mapped
        self._fields = _Fields(per_index, time.monotonic())
        return self._fields

    def query(
        self,
        *,
        entities: list[str] | None,
        start: datetime,
        end: datetime,
        min_severity: str,
        text: str | None,
    ) -> dict[str, Any]:
        cfg, fields = self.cfg, self.fields()
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
        return {"bool": {"filter": must, "must_not": must_not}}

    def search(self, *, limit: int, **query: Any) -> list[LogRecord]:
        ts = self.cfg.timestamp_field
        body = {
            "query": self.query(**query),
            "sort": [{ts: {"order": "desc", "unmapped_type": "date"}}],
            "size": max(0, min(limit, _MAX_HITS)),
            "track_total_hits": False,
        }
        hits = self._search(self.patterns, body).get("hits", {}).get("hits", [])
        return [self.record(hit) for hit in reversed(hits)]

    def record(self, hit: dict[str, Any]) -> LogRecord:
        """A hit as a LogRecord: known fields by the configured names, everything else kept flat."""
        cfg = self.cfg
        flat = _flatten(hit.get("_source") or {})
        stamp = _pop_first(flat, (cfg.timestamp_field, "@timestamp", "timestamp"))
        if stamp is None:
            stamp = _from_epoch_ms((hit.get("sort") or [None])[0])
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

    def aggregate(
        self, fields: list[str], build: Callable[[dict[str, str]], dict[str, Any]], query: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Run `build(field -> name)` as aggregations on each group of indices; the aggregations back."""
        out = []
        for target, names in self.fields(fields).targets(self.patterns, fields):
            aggs = build(names)
            if aggs:
                body = {"size": 0, "query": query, "aggs": aggs, "track_total_hits": False}
                out.append(self._search(target, body).get("aggregations") or {})
        return out

    def close(self) -> None:
        self._client.close()

    def doctor(self) -> SourceCheck:
        """Reachable, authenticated, the patterns match and can be read: checked now, around the breaker."""
        cfg = self.cfg
        check = SourceCheck(
            source=f"elastic:{cfg.name}", kind="logs", target=public_url(cfg.url), reachable=False,
            circuit=self.breaker.state,
        )  # fmt: skip
        self._probe(check)
        if check.circuit != "closed":
            check.detail += f"; searches: {self.breaker.describe()}"
        return check

    def _probe(self, check: SourceCheck) -> None:
        cfg = self.cfg
        try:
            started = time.monotonic()
            info = self.request("GET", "/", guarded=False) or {}
            check.latency_ms = round((time.monotonic() - started) * 1000, 1)
            check.reachable = check.authenticated = True
            version = info.get("version") or {}
            product = f"{version.get('distribution', 'elasticsearch')} {version.get('number', '?')}"
            resolved = self.request("GET", f"/_resolve/index/{self.patterns}", guarded=False) or {}
            matched = sum(len(resolved.get(k) or []) for k in ("indices", "aliases", "data_streams"))
            patterns = ", ".join(cfg.index_patterns)
            if not matched:
                check.permissions_ok = False
                check.detail = f"{product}; no index matches {patterns}"
                check.fix = (
                    "check index_patterns against the cluster's index names, and that the user may "
                    "see them (`read` and `view_index_metadata`)"
                )
                return
            self._search(self.patterns, {"size": 0, "track_total_hits": False}, guarded=False)
            check.permissions_ok = True
            check.detail = f"{product}; {matched} indices match {patterns}"
            if version.get("distribution") == "opensearch" and cfg.flavor != "opensearch":
                check.fix = OPENSEARCH_FIX
        except ElasticError as exc:
            check.detail, check.fix = str(exc), exc.fix
            if exc.status is not None:
                check.reachable = True
                check.authenticated = exc.status != 401
                check.permissions_ok = False if exc.status in (403, 406) else None
            elif exc.fix == OPENSEARCH_FIX:
                check.reachable = True


class ElasticLogs:
    """LogSource over one or more Elasticsearch/OpenSearch clusters (`ElasticConfig` each).

    Same semantics as ReplayLogs: documents in [start, end] at or above `min_severity` (a document
    without a level counts as info), naming one of `entities` in any of the configured entity
    fields (case-insensitive), containing `text` as a phrase; the latest `limit`, oldest first.
    After `breaker_failures` calls in a row got no answer from a cluster, its circuit opens and calls
    fail at once for `breaker_reset_s`. With several clusters, one that fails is left out (its error
    kept in `errors` and, when a `notes` list is given, noted there) unless all fail, which raises
    SourceError.
    """

    def __init__(
        self,
        configs: list[ElasticConfig],
        notes: list[str] | None = None,
        *,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        if not configs:
            raise ValueError("ElasticLogs needs at least one ElasticConfig")
        self._clusters = [
            _Cluster(cfg, CircuitBreaker(f"elastic:{cfg.name}", breaker_failures, breaker_reset_s))
            for cfg in configs
        ]
        self._notes = notes
        self.errors: dict[str, str] = {}

    def _each(self, what: str, call: Callable[[_Cluster], T]) -> list[T]:
        results: list[T] = []
        failures: list[SourceError] = []
        for cluster in self._clusters:
            try:
                results.append(call(cluster))
                self.errors.pop(cluster.name, None)
            except SourceError as exc:
                log.warning("elastic %s: %s failed: %s", cluster.name, what, exc)
                self.errors[cluster.name] = str(exc)
                failures.append(exc)
        if failures and not results:
            if len(failures) == 1:
                raise failures[0]
            raise SourceError("; ".join(str(f) for f in failures))
        if failures and self._notes is not None:
            for name, error in self.errors.items():
                note = f"logs from {name} are missing: {error}"
                if note not in self._notes:
                    self._notes.append(note)
        return results

    def entities(self) -> set[str]:
        """Every value of the entity fields (terms aggregations, up to 1,000 per field)."""

        def values(cluster: _Cluster) -> set[str]:
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
    ) -> list[LogRecord]:
        query = {"entities": entities, "start": start, "end": end, "min_severity": min_severity, "text": text}
        found = self._each("search", lambda c: c.search(limit=limit, **query))
        records = sorted((r for rs in found for r in rs), key=lambda r: r.timestamp)
        return records[-limit:] if limit > 0 else []

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

        def counts(cluster: _Cluster) -> list[SignatureCount]:
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
                            first_seen=_from_epoch_ms(b.get("first", {}).get("value")),
                            last_seen=_from_epoch_ms(b.get("last", {}).get("value")),
                            severity=max(levels, key=LEVELS.index) if levels else None,
                        )
                    )
            return out

        merged: dict[str, SignatureCount] = {}
        for sig in (s for found in self._each("signature_counts", counts) for s in found):
            seen = merged.get(sig.value)
            merged[sig.value] = sig if seen is None else _merge(seen, sig)
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

        def buckets(cluster: _Cluster) -> dict[int, int]:
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


def _merge(a: SignatureCount, b: SignatureCount) -> SignatureCount:
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
