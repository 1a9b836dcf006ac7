"""InfluxDB 1.x backend: InfluxQL over HTTP (httpx), series keys parsed with their escapes."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tools.estate import InfluxConfig
from tools.metrics.influx_common import InfluxError, influx_series, iso_ms
from tools.sources import SourceCheck, public_url
from tools.world import Series

_NUMERIC_V1 = {"float", "integer", "unsigned"}


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


class InfluxQLBackend:
    """One InfluxDB 1.x database through /query (InfluxQL) and /ping."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self.cfg = cfg
        auth = (
            (cfg.username, cfg.password.get_secret_value() if cfg.password else "") if cfg.username else None
        )
        self._http = httpx.Client(base_url=cfg.url, timeout=cfg.timeout_s, auth=auth)

    def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        cfg = self.cfg
        where = f"influx {cfg.name} at {public_url(cfg.url)}"
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
                out += [influx_series(measurement, tags, f, []) for f in numeric.get(measurement, [])]
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
        where = [f"time >= {_literal(iso_ms(start))}", f"time <= {_literal(iso_ms(end))}"]
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
                    out.append(influx_series(s["name"], s.get("tags") or {}, field, points))
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
