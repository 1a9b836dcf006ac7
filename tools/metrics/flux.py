"""InfluxDB 2.x backend: Flux through influxdb-client, numeric values only, filters pushed down."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import urllib3
from influxdb_client import InfluxDBClient
from influxdb_client.rest import ApiException

from tools.estate import InfluxConfig
from tools.metrics.influx_common import InfluxError, influx_series, iso_ms
from tools.sources import SourceCheck, public_url
from tools.world import Series

_FLUX_COLUMNS = {"result", "table", "_start", "_stop", "_time", "_value", "_field", "_measurement"}


def _flux_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


_NUMERIC_FLUX = (
    'types.isType(v: r._value, type: "float") or types.isType(v: r._value, type: "int") '
    'or types.isType(v: r._value, type: "uint")'
)


class FluxBackend:
    """One InfluxDB 2.x org and bucket through influxdb-client (Flux)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        token = cfg.token.get_secret_value() if cfg.token else ""
        self._client = InfluxDBClient(
            url=cfg.url, token=token, org=cfg.org or "", timeout=int(cfg.timeout_s * 1000), retries=False
        )

    def _failure(self, exc: Exception) -> InfluxError:
        cfg = self.cfg
        where = f"influx {cfg.name} at {public_url(cfg.url)}"
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
    def _toinflux_series(group: dict[str, Any], rows: list[tuple[datetime, float]]) -> Series:
        tags = {k: v for k, v in group.items() if k not in _FLUX_COLUMNS}
        return influx_series(str(group.get("_measurement")), tags, str(group.get("_field")), rows)

    def catalog(self, lookback: timedelta) -> list[Series]:
        flux = self.flux(f"-{int(lookback.total_seconds())}s", None, [], ["last()"])
        return [self._toinflux_series(group, []) for group, _ in self.query(flux)]

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
        stop = iso_ms(end + timedelta(milliseconds=1))  # range's stop is exclusive; [start, end] wanted
        flux = self.flux(iso_ms(start), stop, filters, then if bucket_s else [])
        found = [self._toinflux_series(group, rows) for group, rows in self.query(flux) if rows]
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
