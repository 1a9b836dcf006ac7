"""One Elasticsearch or OpenSearch cluster: its API calls, circuit breaker, field names and doctor check.

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
from typing import Any
from urllib.parse import quote

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import ApiError, Elasticsearch, UnsupportedProductError
from elasticsearch.exceptions import HTTP_EXCEPTIONS

from tools.estate import ElasticConfig
from tools.logs.elastic_query import FieldNames, build_query, field_names, to_record
from tools.resilience import CircuitBreaker, call_backend
from tools.sources import BackendError, SourceCheck, public_url
from tools.world import LogRecord

log = logging.getLogger("tools.logs.elastic")

_JSON = {"accept": "application/json", "content-type": "application/json"}
_MAX_HITS = 10_000  # index.max_result_window's default
_MAPPING_TTL_S = 300.0
OPENSEARCH_FIX = (
    "this server looks like OpenSearch, which rejects the Elasticsearch client's compatibility "
    "media type: set `flavor: opensearch` for this endpoint"
)


class ElasticError(BackendError):
    """A cluster could not answer; `status` is the HTTP status when there was one, `fix` what to do."""


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


class ElasticCluster:
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
        self._fields: FieldNames | None = None
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
        where = f"{self.cfg.flavor} {self.name} at {public_url(self.cfg.url)}"
        return call_backend(self.breaker, lambda: self._call(method, path, params, body), ElasticError, where)

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

    def fields(self, also: Iterable[str] = ()) -> FieldNames:
        """The field names per index (re-read after a while, or when new fields are asked for)."""
        if new := [f for f in also if f not in self._wanted]:
            self._wanted += new
            self._fields = None
        if self._fields is not None and time.monotonic() - self._fields.read_at < _MAPPING_TTL_S:
            return self._fields
        path = f"/{self.patterns}/_mapping/field/{','.join(quote(f, safe='@._-') for f in self._wanted)}"
        params = {"ignore_unavailable": "true", "allow_no_indices": "true"}
        resp = self.request("GET", path, params=params) or {}
        self._fields = field_names(resp, self._wanted, time.monotonic())
        return self._fields

    def query(self, **filters: Any) -> dict[str, Any]:
        """build_query's filter (entities, start, end, min_severity, text) on this cluster's field names."""
        return build_query(self.cfg, self.fields(), **filters)

    def search(self, *, limit: int, **query: Any) -> list[LogRecord]:
        ts = self.cfg.timestamp_field
        body = {
            "query": self.query(**query),
            "sort": [{ts: {"order": "desc", "unmapped_type": "date"}}],
            "size": max(0, min(limit, _MAX_HITS)),
            "track_total_hits": False,
        }
        hits = self._search(self.patterns, body).get("hits", {}).get("hits", [])
        return [to_record(self.cfg, hit) for hit in reversed(hits)]

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
