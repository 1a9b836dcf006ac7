"""Live metrics from InfluxDB: 2.x through Flux (influxdb-client), 1.x through InfluxQL over HTTP.

Both return the Series model: one series per measurement, tag set and numeric field. Long windows
are averaged into at most `max_points` buckets of a round size (1 s ... 1 d), as a dashboard does;
a point then carries its bucket's start (never before the window's start) and mean.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from tools.estate import InfluxConfig
from tools.metrics.flux import FluxBackend
from tools.metrics.influx_common import InfluxError, telegraf_unit
from tools.metrics.influxql import InfluxQLBackend, parse_series_key
from tools.resilience import CircuitBreaker, call_backend
from tools.sources import SourceCheck, public_url
from tools.world import Series

__all__ = [  # the backends' names stay importable from here
    "InfluxError",
    "InfluxMetrics",
    "bucket_seconds",
    "parse_series_key",
    "telegraf_unit",
]

_NICE_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def bucket_seconds(start: datetime, end: datetime, max_points: int) -> int:
    """The smallest round bucket (1 s, 5 s, ... 1 h, ... whole days) giving at most `max_points`."""
    raw = max(1, math.ceil((end - start).total_seconds() / max(1, max_points)))
    return next((s for s in _NICE_STEPS_S if s >= raw), math.ceil(raw / 86400) * 86400)


class _Cached:
    """The catalog, re-read after `ttl_s`."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s, self.at, self.value = ttl_s, 0.0, list[Series]()

    def fresh(self) -> bool:
        return bool(self.value) and time.monotonic() - self.at < self.ttl_s

    def keep(self, value: list[Series]) -> list[Series]:
        self.at, self.value = time.monotonic(), value
        return value


class InfluxMetrics:
    """MetricSource over one InfluxDB (`version: 2` Flux, `version: 1` InfluxQL); see the module doc.

    `catalog()` lists numeric series seen in the last `catalog_lookback` (2.x; 1.x lists every
    series key of the database) and is kept for `catalog_ttl_s`. `series()` reads [start, end]
    averaged into at most `max_points` buckets per series (`max_points=None`: raw points).
    """

    def __init__(
        self,
        config: InfluxConfig,
        *,
        max_points: int | None = 1000,
        catalog_lookback: timedelta = timedelta(days=7),
        catalog_ttl_s: float = 60.0,
        breaker_failures: int = 3,
        breaker_reset_s: float = 30.0,
    ) -> None:
        self.config = config
        self.name = config.name
        self._backend: InfluxQLBackend | FluxBackend = (
            InfluxQLBackend(config) if config.version == 1 else FluxBackend(config)
        )
        self._max_points = max_points
        self._lookback = catalog_lookback
        self._catalog = _Cached(catalog_ttl_s)
        self.breaker = CircuitBreaker(f"influx:{config.name}", breaker_failures, breaker_reset_s)

    def _guarded(self, call: Callable[[], list[Series]]) -> list[Series]:
        where = f"influx {self.name} at {public_url(self.config.url)}"
        return call_backend(self.breaker, call, InfluxError, where)

    def catalog(self) -> list[Series]:
        if self._catalog.fresh():
            return list(self._catalog.value)
        return list(self._catalog.keep(self._guarded(lambda: self._backend.catalog(self._lookback))))

    def series(
        self, *, match: dict[str, str] | None, start: datetime, end: datetime, measurement: str | None = None
    ) -> list[Series]:
        bucket = bucket_seconds(start, end, self._max_points) if self._max_points else None
        return self._guarded(lambda: self._backend.series(match, start, end, measurement, bucket))

    def doctor(self) -> list[SourceCheck]:
        """Checked now, around the circuit breaker; the circuit's state is reported with it."""
        cfg = self.config
        check = SourceCheck(
            source=f"influx:{cfg.name}", kind="metrics", target=public_url(cfg.url), reachable=False,
            circuit=self.breaker.state,
        )  # fmt: skip
        try:
            self._backend.check(check)
        except InfluxError as exc:
            check.detail, check.fix = str(exc), exc.fix
            if exc.status == 401:
                check.reachable, check.authenticated = True, False
            elif exc.denied:
                check.reachable, check.authenticated, check.permissions_ok = True, True, False
        if check.circuit != "closed":
            check.detail += f"; queries: {self.breaker.describe()}"
        return [check]

    def close(self) -> None:
        self._backend.close()
