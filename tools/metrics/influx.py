"""Live metrics from InfluxDB: 2.x through Flux (influxdb-client), 1.x through InfluxQL over HTTP.

Both return the Series model: one series per measurement, tag set and numeric field. Long windows
are averaged into at most `max_points` buckets of a round size (1 s ... 1 d), as a dashboard does;
a point then carries its bucket's start (never before the window's start) and mean.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException

from tools.estate import InfluxConfig
from tools.resilience import CircuitBreaker, CircuitOpen
from tools.sources import SourceCheck, SourceError
from tools.world import Series

log = logging.getLogger(__name__)

_NICE_STEPS_S = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
_NUMERIC_V1 = {"float", "integer", "unsigned"}
_FLUX_COLUMNS = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}
_BYTES_FIELDS = re.compile(r"(^|_)(bytes|free|used|total|available|buffered|cached)$")


class InfluxError(SourceError):
    """InfluxDB could not answer; `status` is the HTTP status when there was one, `fix` what to do."""

    def __init__(
        self,
        message: str,
        *,
        fix: str = "",
        status: int | None = None,
        denied: bool = False,
        kind: str | None = None,
    ) -> None:
        super().__init__(f"{message}; {fix}" if fix else message)
        self.fix, self.status, self.denied = fix, status, denied
        # what counts against the circuit: no answer, or a 5xx (4xx and query errors are answers)
        self.kind = kind or ("server error" if status is not None and status >= 500 else None)


def bucket_seconds(start: datetime, end: datetime, max_points: int) -> int:
    """The smallest round bucket (1 s, 5 s, ... 1 h, ... whole days) giving at most `max_points`."""
    raw = max(1, math.ceil((end - start).total_seconds() / max(1, max_points)))
    return next((s for s in _NICE_STEPS_S if s >= raw), math.ceil(raw / 86400) * 86400)


def telegraf_unit(measurement: str, field: str) -> str | None:
    """The unit of a Telegraf-style field: `used_percent`, `usage_idle` (cpu) -> percent, `free` -> bytes."""
    if field.endswith(("percent", "_pct")) or (measurement == "cpu" and field.startswith("usage_")):
        return "percent"
    if measurement in ("disk", "mem", "swap") and _BYTES_FIELDS.search(field):
        return "bytes"
    return "bytes" if field.endswith("_bytes") else None


def _public_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.hostname or ''}:{parts.port}" if parts.port else parts.hostname or ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _series(
    measurement: str, tags: dict[str, Any], field: str, points: list[tuple[datetime, float]]
) -> Series:
    clean = {k: str(v) for k, v in tags.items() if v not in (None, "")}
    unit = telegraf_unit(measurement, field)
    return Series(measurement=measurement, tags=clean, field=field, unit=unit, points=points)


class _Cached:
    """The catalog, re-read after `ttl_s`."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s, self.at, self.value = ttl_s, 0.0, list[Series]()

    def fresh(self) -> bool:
        return bool(self.value) and time.monotonic() - self.at < self.ttl_s

    def keep(self, value: list[Series]) -> list[Series]:
        self.at, self.value = time.monotonic(), value
        return value


# --- InfluxDB 1.x: InfluxQL ---------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _split_unescaped(text: str, sep: str) -> list[str]:
    """Split at `sep` where it is not backslash-escaped; the parts keep their escapes."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == sep:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    return [*parts, text[start:]]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def parse_series_key(key: str) -> tuple[str, dict[str, str]]:
    """`disk,host=db-host-02,path=/data` -> ("disk", {"host": ..., "path": ...}); escapes honoured."""
    measurement, *pairs = _split_unescaped(key, ",")
    tags = {}
    for pair in pairs:
        name, *value = _split_unescaped(pair, "=")
        tags[_unescape(name)] = _unescape("=".join(value))
    return _unescape(measurement), tags


class _InfluxQL:
    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        auth = (
            (cfg.username, cfg.password.get_secret_value() if cfg.password else "") if cfg.username else None
        )
        self._http = httpx.Client(base_url=cfg.url, timeout=cfg.timeout_s, auth=auth)

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        cfg = self.cfg
        where = f"influx {cfg.name} at {_public_url(cfg.url)}"
        try:
            resp = self._http.get(path, params=params)
        except httpx.TimeoutException:
            fix = "check the server's health and load, or raise timeout_s if it is only slow"
            raise InfluxError(
                f"{where}: no answer within {cfg.timeout_s:g} s", fix=fix, kind="timeout"
            ) from None
        except httpx.HTTPError as exc:
            fix = "check the url (scheme, host, port) and that InfluxDB is up and reachable from here"
            message = f"{where}: cannot connect ({type(exc).__name__})"
            raise InfluxError(message, fix=fix, kind="connection failure") from None
        if resp.status_code == 401:
            fix = "check username and password (InfluxDB 1.x with auth-enabled)"
            raise InfluxError(f"{where}: authentication failed (401)", fix=fix, status=401)
        return resp

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL statements; the `results` list, one per statement."""
        db = self.cfg.database or ""
        resp = self._get("/query", {"db": db, "q": q, "epoch": "ms"})
        where = f"influx {self.cfg.name} database {db!r}"
        try:
            body = resp.json()
        except ValueError:
            raise InfluxError(
                f"{where}: HTTP {resp.status_code}: {resp.text[:300]}", status=resp.status_code
            ) from None
        errors = [body.get("error")] + [r.get("error") for r in body.get("results", [])]
        for error in filter(None, errors):
            if "database not found" in error:
                fix = "check `database:` (SHOW DATABASES lists them)"
                raise InfluxError(f"{where}: {error}", fix=fix, denied=True)
            if "not authorized" in error:
                fix = (
                    f"check `database:`, and grant the user read access: GRANT READ ON {_ident(db)} TO <user>"
                )
                raise InfluxError(f"{where}: {error}", fix=fix, denied=True)
            raise InfluxError(f"{where}: {error}", status=resp.status_code)
        if resp.status_code >= 400:
            raise InfluxError(f"{where}: HTTP {resp.status_code}: {resp.text[:300]}", status=resp.status_code)
        results: list[dict[str, Any]] = body.get("results", [])
        return results

    def catalog(self, lookback: timedelta) -> list[Series]:
        (series_keys,) = self.query("SHOW SERIES")  # one statement a request (see `check`)
        (field_keys,) = self.query("SHOW FIELD KEYS")
        numeric: dict[str, list[str]] = {}
        for s in field_keys.get("series", []):
            numeric[s["name"]] = [name for name, kind in s["values"] if kind in _NUMERIC_V1]
        out = []
        for s in series_keys.get("series", []):
            for (key,) in s["values"]:
                measurement, tags = parse_series_key(key)
                out += [_series(measurement, tags, f, []) for f in numeric.get(measurement, [])]
        return out

    def series(
        self,
        match: dict[str, str] | None,
        start: datetime,
        end: datetime,
        measurement: str | None,
        bucket_s: int | None,
    ) -> list[Series]:
        source = _ident(measurement) if measurement else "/.*/"
        where = [f"time >= {_literal(_iso(start))}", f"time <= {_literal(_iso(end))}"]
        where += [f"{_ident(k)} = {_literal(v)}" for k, v in (match or {}).items()]
        select, group = ("mean(*)", f"time({bucket_s}s), * fill(none)") if bucket_s else ("*", "*")
        q = f"SELECT {select} FROM {source} WHERE {' AND '.join(where)} GROUP BY {group}"
        (result,) = self.query(q)
        out = []
        for s in result.get("series", []):
            columns: list[str] = s["columns"]
            for i, column in enumerate(columns[1:], start=1):
                points = [
                    (max(start, datetime.fromtimestamp(row[0] / 1000, UTC)), float(row[i]))
                    for row in s["values"]
                    if isinstance(row[i], int | float) and not isinstance(row[i], bool)
                ]
                if points:
                    field = column.removeprefix("mean_") if bucket_s else column
                    out.append(_series(s["name"], s.get("tags") or {}, field, points))
        return out

    def check(self, check: SourceCheck) -> None:
        started = time.monotonic()
        ping = self._get("/ping")
        if ping.status_code != 204:
            fix = "check the url: it must be InfluxDB's base URL (where /ping answers 204)"
            raise InfluxError(f"/ping answered HTTP {ping.status_code}", fix=fix, status=ping.status_code)
        version = ping.headers.get("X-Influxdb-Version", "?")
        check.latency_ms = round((time.monotonic() - started) * 1000, 1)
        check.reachable = True
        # ping needs no auth; these do. One statement a request: InfluxDB 1.x answers a batch on a
        # missing database with "not executed" instead of "database not found".
        self.query("SHOW SERIES LIMIT 1")
        (result,) = self.query("SHOW MEASUREMENTS LIMIT 1000")
        check.authenticated = check.permissions_ok = True
        measurements = len((result.get("series") or [{}])[0].get("values") or [])
        check.detail = f"InfluxDB {version}, database {self.cfg.database!r}: {measurements} measurements"
        if not measurements:
            check.fix = "the database holds no measurements yet: check that Telegraf writes to it"

    def close(self) -> None:
        self._http.close()


# --- InfluxDB 2.x: Flux -------------------------------------------------------------------------


def _flux_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


_NUMERIC_FLUX = (
    'types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int") '
    'or types.isType(v: r._value, type: "uint")'
)


class _Flux:
    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        token = cfg.token.get_secret_value() if cfg.token else ""
        self._client = InfluxDBClient(
            url=cfg.url, token=token, org=cfg.org or "", timeout=int(cfg.timeout_s * 1000), retries=False
        )

    def _failure(self, exc: Exception) -> InfluxError:
        cfg = self.cfg
        where = f"influx {cfg.name} at {_public_url(cfg.url)}"
        if isinstance(exc, ApiException):
            status, message = exc.status, (exc.body or exc.reason or "")
            if isinstance(message, bytes):
                message = message.decode(errors="replace")
            message = str(message)[:300]
            if status == 401:
                return InfluxError(f"{where}: unauthorized (401)", fix="check the API token", status=401)
            if status in (403, 404):
                fix = (
                    f"check org {cfg.org!r} and bucket {cfg.bucket!r}, and that the token may read the bucket"
                )
                return InfluxError(f"{where}: HTTP {status}: {message}", fix=fix, status=status, denied=True)
            return InfluxError(f"{where}: HTTP {status}: {message}", status=status)
        if isinstance(exc, urllib3.exceptions.TimeoutError):
            fix = "check the server's health and load, or raise timeout_s if it is only slow"
            return InfluxError(f"{where}: no answer within {cfg.timeout_s:g} s", fix=fix, kind="timeout")
        if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
            fix = "check the url (scheme, host, port) and that InfluxDB is up and reachable from here"
            return InfluxError(
                f"{where}: cannot connect ({type(exc).__name__})", fix=fix, kind="connection failure"
            )
        return InfluxError(f"{where}: {type(exc).__name__}: {exc}")

    def query(self, flux: str) -> list[tuple[dict[str, Any], list[tuple[datetime, float]]]]:
        """Run Flux; per table, its group key (tags, _measurement, _field) and (time, value) rows."""
        try:
            tables = self._client.query_api().query(flux, org=self.cfg.org)
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._failure(exc) from None
        out = []
        for table in tables:
            keys = [c.label for c in table.columns if c.group and c.label not in ("_start", "_stop")]
            rows = [
                (r.get_time(), float(r.get_value()))
                for r in table.records
                if isinstance(r.get_value(), int | float) and not isinstance(r.get_value(), bool)
            ]
            group = {k: table.records[0].values.get(k) for k in keys} if table.records else {}
            out.append((group, rows))
        return out

    def flux(
        self, start: str, stop: str | None, filters: list[str], then: list[str], numeric: bool = True
    ) -> str:
        """A Flux query on the bucket: range, the filters (pushed down to storage), numeric values only."""
        window = f"start: {start}" + (f", stop: {stop}" if stop else "")
        lines = ['import "types"'] if numeric else []
        lines += [f"from(bucket: {_flux_str(self.cfg.bucket or '')})", f"  |> range({window})"]
        lines += [f"  |> filter(fn: (r) => {predicate})" for predicate in filters]
        lines += [f"  |> filter(fn: (r) => {_NUMERIC_FLUX})"] if numeric else []
        return "\n".join(lines + [f"  |> {step}" for step in then]) + "\n"

    @staticmethod
    def _to_series(group: dict[str, Any], rows: list[tuple[datetime, float]]) -> Series:
        tags = {k: v for k, v in group.items() if k not in _FLUX_COLUMNS}
        return _series(str(group.get("_measurement")), tags, str(group.get("_field")), rows)

    def catalog(self, lookback: timedelta) -> list[Series]:
        flux = self.flux(f"-{int(lookback.total_seconds())}s", None, [], ["last()"])
        return [self._to_series(group, []) for group, _ in self.query(flux)]

    def series(
        self,
        match: dict[str, str] | None,
        start: datetime,
        end: datetime,
        measurement: str | None,
        bucket_s: int | None,
    ) -> list[Series]:
        filters = [f"r._measurement == {_flux_str(measurement)}"] if measurement else []
        filters += [f"r[{_flux_str(k)}] == {_flux_str(v)}" for k, v in (match or {}).items()]
        then = [f'aggregateWindow(every: {bucket_s}s, fn: mean, createEmpty: false, timeSrc: "_start")']
        stop = _iso(end + timedelta(milliseconds=1))  # range's stop is exclusive; [start, end] wanted
        flux = self.flux(_iso(start), stop, filters, then if bucket_s else [])
        found = [self._to_series(group, rows) for group, rows in self.query(flux) if rows]
        return [s.model_copy(update={"points": [(max(t, start), v) for t, v in s.points]}) for s in found]

    def check(self, check: SourceCheck) -> None:
        started = time.monotonic()
        try:
            version = self._client.version()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._failure(exc) from None
        check.latency_ms = round((time.monotonic() - started) * 1000, 1)
        check.reachable = True
        tables = self.query(self.flux("-1h", None, [], ["limit(n: 1)"], numeric=False))
        check.authenticated = check.permissions_ok = True
        where = f"org {self.cfg.org!r}, bucket {self.cfg.bucket!r}"
        check.detail = f"InfluxDB {version}, {where}: {len(tables)} series in the last hour"
        if not tables:
            check.fix = "no data in the last hour: check that Telegraf writes to this bucket"

    def close(self) -> None:
        self._client.close()


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
        self._backend: _InfluxQL | _Flux = _InfluxQL(config) if config.version == 1 else _Flux(config)
        self._max_points = max_points
        self._lookback = catalog_lookback
        self._catalog = _Cached(catalog_ttl_s)
        self.breaker = CircuitBreaker(f"influx:{config.name}", breaker_failures, breaker_reset_s)

    def _guarded(self, call: Callable[[], list[Series]]) -> list[Series]:
        try:
            return self.breaker.call(call, lambda exc: exc.kind if isinstance(exc, InfluxError) else None)
        except CircuitOpen as exc:
            where = f"influx {self.name} at {_public_url(self.config.url)}"
            fix = "its last calls got no answer; `opscopilot doctor` checks it now"
            raise InfluxError(f"{where} not called: {exc}", fix=fix) from None

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
            source=f"influx:{cfg.name}", kind="metrics", target=_public_url(cfg.url), reachable=False,
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
