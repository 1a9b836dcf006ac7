"""Live metrics from Prometheus through its HTTP API (httpx): range queries and the series catalog.

A Prometheus series is a Series with measurement = the metric name (`__name__`), tags = its other
labels and field = "value". Range queries are evaluated every `step` seconds (`step_s`, widened so
that a window gives at most `max_points` points), from the first multiple of the step at or after
the window's start, so repeated questions hit the same evaluation times.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tools.estate import PrometheusConfig
from tools.resilience import CircuitBreaker, call_backend
from tools.sources import BackendError, SourceCheck, public_url
from tools.world import Series

log = logging.getLogger(__name__)

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MAX_PROMETHEUS_POINTS = 11_000  # Prometheus refuses longer range queries
_UNIT_SUFFIXES = (("_bytes", "bytes"), ("_seconds", "s"), ("_percent", "percent"), ("_milliseconds", "ms"))


class PrometheusError(BackendError):
    """Prometheus could not answer; `status` is the HTTP status when there was one, `fix` what to do,
    `api` when the Prometheus API itself answered (with an error)."""

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        status: int | None = None,
        api: bool = False,
        kind: str | None = None,
    ) -> None:
        super().__init__(message, fix=fix, status=status, kind=kind)
        self.api = api


def metric_unit(name: str) -> str | None:
    """The unit a metric name declares by the naming convention (`node_memory_free_bytes` -> bytes)."""
    base = name.removesuffix("_total")
    return next((unit for suffix, unit in _UNIT_SUFFIXES if base.endswith(suffix)), None)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(match: dict[str, str] | None, measurement: str | None) -> str | None:
    """The PromQL selector for a tag match (None when a key cannot be a label: nothing can match)."""
    pairs = dict(match or {})
    if measurement:
        pairs["__name__"] = measurement
    if any(not _LABEL_NAME.match(k) for k in pairs):
        return None
    matchers = [f"{k}={_quote(v)}" for k, v in sorted(pairs.items())]
    return "{" + ", ".join(matchers or ['__name__=~".+"']) + "}"


def _as_series(labels: dict[str, str], points: list[tuple[datetime, float]]) -> Series:
    name = labels.get("__name__", "")
    tags = {k: v for k, v in labels.items() if k != "__name__"}
    return Series(measurement=name, tags=tags, field="value", unit=metric_unit(name), points=points)


class PrometheusMetrics:
    """MetricSource over one Prometheus (or a Prometheus-compatible API: Thanos, Mimir, VictoriaMetrics).

    `catalog()` lists the series that had samples in the last `catalog_lookback` (kept for
    `catalog_ttl_s`); `series()` runs one range query for the selector the match makes.
    """

    def __init__(
        self,
        config: PrometheusConfig,
        *,
        max_points: int = 1000,
        catalog_lookback: timedelta = timedelta(days=7),
        catalog_ttl_s: float = 60.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        self.config = config
        self.name = config.name
        headers = (
            {"Authorization": f"Bearer {config.bearer_token.get_secret_value()}"}
            if config.bearer_token
            else {}
        )
        self._http = httpx.Client(base_url=config.url.rstrip("/"), timeout=config.timeout_s, headers=headers)
        self._max_points = max_points
        self._lookback = catalog_lookback
        self._ttl_s = catalog_ttl_s
        self._clock = clock
        self._catalog: tuple[float, list[Series]] | None = None
        self.breaker = CircuitBreaker(f"prometheus:{config.name}", breaker_failures, breaker_reset_s)

    def _guarded(self, call: Callable[[], list[Series]]) -> list[Series]:
        where = f"prometheus {self.name} at {public_url(self.config.url)}"
        return call_backend(self.breaker, call, PrometheusError, where)

    def _api(self, method: str, path: str, params: dict[str, Any]) -> Any:
        """Call /api/v1/...; the `data` of a success, a PrometheusError that says what to fix otherwise."""
        cfg = self.config
        where = f"prometheus {cfg.name} at {public_url(cfg.url)}"
        try:
            if method == "POST":
                resp = self._http.post(path, data=params)
            else:
                resp = self._http.get(path, params=params)
        except httpx.TimeoutException:
            fix = "check the server's health and load, or raise timeout_s if it is only slow"
            message = f"{where}: no answer within {cfg.timeout_s:g} s"
            raise PrometheusError(message, fix=fix, kind="timeout") from None
        except httpx.HTTPError as exc:
            fix = "check the url (scheme, host, port) and that Prometheus is up and reachable from here"
            message = f"{where}: cannot connect ({type(exc).__name__})"
            raise PrometheusError(message, fix=fix, kind="connection failure") from None
        if resp.status_code in (401, 403):
            fix = "check bearer_token (Prometheus behind an authenticating proxy)"
            raise PrometheusError(f"{where}: HTTP {resp.status_code}", fix=fix, status=resp.status_code)
        try:
            body = resp.json()
        except ValueError:
            raise PrometheusError(
                f"{where}: HTTP {resp.status_code}, not the Prometheus API: {resp.text[:200]!r}",
                fix="check the url: it must be the Prometheus base URL (the API is under /api/v1)",
                status=resp.status_code,
            ) from None
        if body.get("status") != "success":
            error = f"{body.get('errorType', 'error')}: {body.get('error', resp.text[:200])}"
            message = f"{where}: HTTP {resp.status_code}: {error}"
            raise PrometheusError(message, status=resp.status_code, api=True)
        for warning in body.get("warnings") or []:
            log.warning("prometheus %s: %s", cfg.name, warning)
        return body.get("data")

    def catalog(self) -> list[Series]:
        if self._catalog and time.monotonic() - self._catalog[0] < self._ttl_s:
            return list(self._catalog[1])
        found = self._guarded(self._read_catalog)
        self._catalog = (time.monotonic(), found)
        return list(found)

    def _read_catalog(self) -> list[Series]:
        now = self._clock()
        params = {
            "match[]": '{__name__=~".+"}',
            "start": f"{(now - self._lookback).timestamp():.3f}",
            "end": f"{now.timestamp():.3f}",
        }
        return [_as_series(labels, []) for labels in self._api("GET", "/api/v1/series", params) or []]

    def step_for(self, start: datetime, end: datetime) -> int:
        span = max(0.0, (end - start).total_seconds())
        widest = max(self._max_points, 1), _MAX_PROMETHEUS_POINTS
        return max(self.config.step_s, math.ceil(span / min(widest)))

    def series(
        self, *, match: dict[str, str] | None, start: datetime, end: datetime, measurement: str | None = None
    ) -> list[Series]:
        query = selector(match, measurement)
        if query is None:
            return []
        step = self.step_for(start, end)
        first = math.ceil(start.timestamp() / step) * step
        if first > end.timestamp():
            return []
        params = {"query": query, "start": str(first), "end": f"{end.timestamp():.3f}", "step": str(step)}
        return self._guarded(lambda: self._range(params))

    def _range(self, params: dict[str, str]) -> list[Series]:
        data = self._api("POST", "/api/v1/query_range", params) or {}
        out = []
        for result in data.get("result", []):
            points = [
                (datetime.fromtimestamp(float(ts), UTC), value)
                for ts, raw in result.get("values", [])
                if math.isfinite(value := float(raw))
            ]
            out.append(_as_series(result.get("metric", {}), points))
        return out

    def doctor(self) -> list[SourceCheck]:
        """Checked now, around the circuit breaker; the circuit's state is reported with it."""
        cfg = self.config
        check = SourceCheck(
            source=f"prometheus:{cfg.name}", kind="metrics", target=public_url(cfg.url), reachable=False,
            circuit=self.breaker.state,
        )  # fmt: skip
        try:
            started = time.monotonic()
            build = self._api("GET", "/api/v1/status/buildinfo", {}) or {}
            check.latency_ms = round((time.monotonic() - started) * 1000, 1)
            check.reachable = check.authenticated = True
            names = self._api("GET", "/api/v1/label/__name__/values", {}) or []
            check.permissions_ok = True
            check.detail = f"Prometheus {build.get('version', '?')}: {len(names)} metric names"
            if not names:
                check.fix = "no metrics stored yet: check the scrape configuration and targets"
        except PrometheusError as exc:
            check.detail, check.fix = str(exc), exc.fix
            if exc.status in (401, 403):
                check.reachable, check.authenticated = True, False
            elif exc.api:
                check.reachable = True
        if check.circuit != "closed":
            check.detail += f"; queries: {self.breaker.describe()}"
        return [check]

    def close(self) -> None:
        self._http.close()
