"""InfluxMetrics, PrometheusMetrics and CombinedMetrics against real servers started here.

- InfluxDB 1.6 (Debian's `influxd`): a private instance per test session, auth enabled, on a free
  port with a temporary data dir; Telegraf-style points written with explicit timestamps.
- Prometheus 2.42 (Debian's `prometheus`): a private instance scraping a tiny exporter served
  from this test every 0.5 s, plus three days of history backfilled with `promtool tsdb
  create-blocks-from openmetrics`.

Stand-in only: InfluxDB 2 cannot run here, so the Flux path talks to `influx2`, an HTTP server
that checks each request as the real `/api/v2/query` does (POST, `org`, `Authorization: Token`,
JSON or `application/vnd.flux` body, the dialect's annotations, the bucket) and answers with
RECORDED annotated CSV (tests/live/data/influx2). It answers only queries whose Flux text is
recorded, so it also pins the queries InfluxMetrics sends.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml

from tests.conftest import EXAMPLES
from tests.live import unavailable
from tests.standins.loopback import LoopbackServer, QuietHandler
from tools.estate import InfluxConfig, PrometheusConfig
from tools.isolation import collecting_notes
from tools.metrics.combined import CombinedMetrics
from tools.metrics.influx import InfluxError, InfluxMetrics, parse_series_key
from tools.metrics.prometheus import PrometheusError, PrometheusMetrics
from tools.metrics.views import capacity_forecast, metric_anomalies
from tools.replay import ReplayMetrics
from tools.sources import MetricSource, SourceError, Sources, ToolContext
from tools.world import Series, World

pytestmark = pytest.mark.live

RECORDED = Path(__file__).parent / "data" / "influx2"
NOW = datetime(2026, 5, 10, 8, tzinfo=UTC)  # the disk-forecast-01 scenario's clock
CPU_HOSTS = ["db-host-01", "db-host-02", "db-host-03", "db-host-04"]
TB = 500_000_000_000  # the data volume's size in bytes


def scenario() -> World:
    doc = yaml.safe_load((EXAMPLES / "disk-forecast-01.yaml").read_text())
    return World.model_validate(doc["world"])


def ctx(source: MetricSource, now: datetime = NOW, history: timedelta = timedelta(days=7)) -> ToolContext:
    return ToolContext(
        sources=Sources(metrics=source), now=now, start=now - timedelta(hours=6), end=now,
        history_start=now - history,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(what: str, ready: Any, timeout_s: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if ready():
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready within {timeout_s} s")


# --- InfluxDB 1.6 -------------------------------------------------------------------------------


def cpu_value(host: int, i: int, field: str) -> float:
    user = 20 + 8 * host + 6 * math.sin(i / 9)
    return round({"usage_user": user, "usage_system": user / 4, "usage_idle": 100 - 1.25 * user}[field], 3)


def telegraf_lines() -> list[str]:
    """Line protocol as Telegraf writes it (seconds precision): the scenario's disk plus the estate."""
    lines = []
    for s in scenario().metrics:  # disk,host=db-host-02,path=... used_percent + the byte counts
        tags = ",".join(f"{k}={v}" for k, v in sorted(s.tags.items()))
        for at, pct in s.points:
            used = round(TB * pct / 100)
            fields = f"used_percent={pct},total={TB}i,used={used}i,free={TB - used}i"
            lines.append(f"{s.measurement},{tags} {fields} {int(at.timestamp())}")
    start = NOW - timedelta(days=3)
    for i in range(0, 3 * 144 + 1):  # every 10 minutes for three days
        ts = int((start + timedelta(minutes=10 * i)).timestamp())
        for n, host in enumerate(CPU_HOSTS):
            fields = ",".join(
                f"{f}={cpu_value(n, i, f)}" for f in ("usage_user", "usage_system", "usage_idle")
            )
            lines.append(f"cpu,cpu=cpu-total,host={host} {fields} {ts}")
        if i % 6 == 0:  # hourly
            lines.append(f"disk,host=db-host-01,path=/ used_percent=55.3,free=90000000000i {ts}")
            lines.append(rf"disk,host=db-host-03,path=/mnt/backup\ vol used_percent=20.5 {ts}")
            uptime = f'"{i // 144} days, {i % 144 // 6}:00"'
            lines.append(f"system,host=db-host-02 load1=1.{i % 7},n_cpus=8i,uptime_format={uptime} {ts}")
    return lines


@dataclass
class Influx1:
    url: str
    startup_s: float

    def config(self, **over: Any) -> InfluxConfig:
        base: dict[str, Any] = {"name": "influx1", "url": self.url, "version": 1, "database": "telegraf"}
        return InfluxConfig.model_validate(base | {"username": "reader", "password": "r3ad-only"} | over)


@pytest.fixture(scope="session")
def influx1() -> Iterator[Influx1]:
    binary = shutil.which("influxd") or "/usr/bin/influxd"
    if not os.path.exists(binary):
        unavailable("influxd (Debian package influxdb) is not installed: run scripts/services")
    work = Path(tempfile.mkdtemp(prefix="opscopilot-influx-"))
    http_port, rpc_port = _free_port(), _free_port()
    (work / "influxdb.conf").write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{work}/meta"
[data]
  dir = "{work}/data"
  wal-dir = "{work}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = true
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[logging]
  level = "warn"
"""
    )
    url = f"http://127.0.0.1:{http_port}"
    started = time.monotonic()
    log_file = (work / "influxd.log").open("w")
    proc = subprocess.Popen(
        [binary, "-config", str(work / "influxdb.conf")], stdout=log_file, stderr=log_file
    )
    try:
        _wait("influxd", lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 204)
        startup = time.monotonic() - started
        admin = httpx.Client(base_url=url, timeout=30)
        admin.post("/query", data={"q": "CREATE USER admin WITH PASSWORD 'adm1n' WITH ALL PRIVILEGES"})
        admin.auth = ("admin", "adm1n")
        for q in [
            "CREATE DATABASE telegraf",
            "CREATE USER reader WITH PASSWORD 'r3ad-only'",
            "GRANT READ ON telegraf TO reader",
            "CREATE USER nobody WITH PASSWORD 'n0body'",
        ]:
            admin.post("/query", data={"q": q}).raise_for_status()
        admin.post("/write", params={"db": "telegraf", "precision": "s"}, content="\n".join(telegraf_lines()))
        admin.close()
        print(f"influxd 1.6 ready in {startup:.2f} s")
        yield Influx1(url, startup)
    except TimeoutError as exc:
        unavailable(f"influxd did not start: {exc}; log: {(work / 'influxd.log').read_text()[-500:]}")
    finally:
        proc.terminate()
        proc.wait(10)
        log_file.close()
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def influx(influx1: Influx1) -> InfluxMetrics:
    return InfluxMetrics(influx1.config())


def test_series_keys_are_parsed_with_escapes() -> None:
    assert parse_series_key(r"disk,host=db-host-03,path=/mnt/backup\ vol") == (
        "disk",
        {"host": "db-host-03", "path": "/mnt/backup vol"},
    )
    assert parse_series_key(r"m\,x,k\=1=a\,b") == ("m,x", {"k=1": "a,b"})


def test_influx1_catalog_lists_numeric_series_without_points(influx: InfluxMetrics) -> None:
    catalog = {s.label: s for s in influx.catalog()}
    data = catalog["disk.used_percent{host=db-host-02,path=/var/opt/mssql/data}"]
    assert data.points == [] and data.unit == "percent"
    assert catalog["disk.free{host=db-host-02,path=/var/opt/mssql/data}"].unit == "bytes"
    assert "disk.used_percent{host=db-host-03,path=/mnt/backup vol}" in catalog  # escaped space
    assert "system.n_cpus{host=db-host-02}" in catalog  # integer fields count
    assert not any(s.field == "uptime_format" for s in catalog.values())  # strings do not
    assert {s.tags["host"] for s in catalog.values() if s.measurement == "cpu"} == set(CPU_HOSTS)
    assert catalog["cpu.usage_idle{cpu=cpu-total,host=db-host-01}"].unit == "percent"


def test_influx1_series_match_the_scenario_exactly(influx: InfluxMetrics) -> None:
    live = influx.series(match={"host": "db-host-02"}, start=NOW - timedelta(days=7), end=NOW)
    by_label = {s.label: s for s in live}
    replay = ReplayMetrics(scenario().metrics)
    for want in replay.series(match={"host": "db-host-02"}, start=NOW - timedelta(days=7), end=NOW):
        assert by_label[want.label].points == want.points  # 15-minute buckets keep 12-hourly points
    assert {s.measurement for s in live} == {"disk", "cpu", "system"}
    assert not any(s.field == "uptime_format" for s in live)
    assert all(NOW - timedelta(days=7) <= t <= NOW for s in live for t, _ in s.points)


def test_influx1_long_windows_are_averaged_into_round_buckets(influx1: Influx1) -> None:
    def cpu_of_db_host_01(metrics: InfluxMetrics) -> list[Series]:
        window = {"start": NOW - timedelta(days=3), "end": NOW}
        return metrics.series(match={"host": "db-host-01"}, measurement="cpu", **window)

    raw = cpu_of_db_host_01(InfluxMetrics(influx1.config(), max_points=None))
    hourly = cpu_of_db_host_01(InfluxMetrics(influx1.config(), max_points=100))  # 3 d / 100 -> 1 h
    (user_raw,) = [s for s in raw if s.field == "usage_user"]
    (user_hourly,) = [s for s in hourly if s.field == "usage_user"]
    assert len(user_raw.points) == 433 and len(user_hourly.points) == 73
    first_hour = [v for t, v in user_raw.points if t < NOW - timedelta(days=3, hours=-1)]
    assert user_hourly.points[0] == (NOW - timedelta(days=3), pytest.approx(statistics.fmean(first_hour)))
    assert all(t.minute == 0 and t.second == 0 for t, _ in user_hourly.points)


def test_capacity_forecast_over_influx1_finds_days_until_full(influx: InfluxMetrics) -> None:
    live = capacity_forecast(ctx(influx), "db-host-02")
    replay = capacity_forecast(ctx(ReplayMetrics(scenario().metrics)), "db-host-02")
    (want,) = replay.findings
    used = next(f for f in live.findings if "used_percent" in f.title)
    assert used.model_dump() == want.model_dump()  # the same finding as from the recorded world
    assert used.kind == "days_until_full" and "full (100%) in 3.2 days (77 hours)" in used.title
    assert used.remediation is not None and used.remediation.action == "create_ticket"
    free = next(f for f in live.findings if " free" in f.title)
    assert free.kind == "days_until_full" and "out of space in 3.2 days" in free.title


def test_influx1_doctor_and_its_failures(influx1: Influx1) -> None:
    (ok,) = InfluxMetrics(influx1.config()).doctor()
    assert ok.ok and ok.source == "influx:influx1" and ok.latency_ms is not None
    assert "InfluxDB 1.6" in ok.detail and "3 measurements" in ok.detail
    (bad_password,) = InfluxMetrics(influx1.config(password="wrong")).doctor()
    assert bad_password.reachable and bad_password.authenticated is False
    assert "username and password" in bad_password.fix
    (no_grant,) = InfluxMetrics(influx1.config(username="nobody", password="n0body")).doctor()
    assert no_grant.authenticated and no_grant.permissions_ok is False
    assert 'GRANT READ ON "telegraf"' in no_grant.fix
    (no_db,) = InfluxMetrics(influx1.config(username="admin", password="adm1n", database="telegarf")).doctor()
    assert no_db.permissions_ok is False and "database not found" in no_db.detail
    with pytest.raises(InfluxError, match="not authorized"):
        InfluxMetrics(influx1.config(username="nobody", password="n0body")).catalog()


# --- Prometheus ---------------------------------------------------------------------------------


class Exporter:
    """A /metrics endpoint in Prometheus text exposition format with a gauge the test sets."""

    def __init__(self) -> None:
        self.latency_s = 0.12
        exporter = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                body = (
                    "# HELP checkout_request_duration_p95_seconds p95 latency of checkout requests.\n"
                    "# TYPE checkout_request_duration_p95_seconds gauge\n"
                    f'checkout_request_duration_p95_seconds{{service="checkout"}} {exporter.latency_s}\n'
                    "# HELP checkout_requests_total Requests served.\n"
                    "# TYPE checkout_requests_total counter\n"
                    'checkout_requests_total{service="checkout",code="200"} 1027\n'
                ).encode()
                self.reply(200, body, {"Content-Type": "text/plain; version=0.0.4"})

        self.server = LoopbackServer(Handler)
        self.port = self.server.port

    def close(self) -> None:
        self.server.close()


@dataclass
class Prom:
    url: str
    exporter: Exporter
    started_at: datetime
    startup_s: float
    backfill_s: float

    def config(self, **over: Any) -> PrometheusConfig:
        return PrometheusConfig.model_validate({"name": "prometheus", "url": self.url, "step_s": 1} | over)


def backfill(path: Path, now: datetime) -> None:
    """Three days of disk usage for db-host-02, every 5 minutes until 10 minutes ago (OpenMetrics)."""
    lines = ["# HELP disk_used_percent Telegraf disk used_percent.", "# TYPE disk_used_percent gauge"]
    first = int((now - timedelta(days=3)).timestamp()) // 300 * 300
    for i in range(3 * 288 - 2):
        labels = 'host="db-host-02",path="/var/opt/mssql/data"'
        lines.append(f"disk_used_percent{{{labels}}} {60 + i * 0.01:.2f} {first + i * 300}")
    path.write_text("\n".join([*lines, "# EOF", ""]))


@pytest.fixture(scope="session")
def prom() -> Iterator[Prom]:
    binary, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not binary or not promtool:
        unavailable("prometheus/promtool (Debian package prometheus) are not installed: run scripts/services")
    assert binary and promtool
    work = Path(tempfile.mkdtemp(prefix="opscopilot-prometheus-"))
    exporter = Exporter()
    started = time.monotonic()
    backfill(work / "history.om", datetime.now(UTC))
    create_blocks = [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q"]
    subprocess.run(
        [*create_blocks, str(work / "history.om"), str(work / "data")], check=True, capture_output=True
    )
    backfill_s = time.monotonic() - started
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
        "scrape_configs:\n  - job_name: checkout\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    port = _free_port()
    log_file = (work / "prometheus.log").open("w")
    started = time.monotonic()
    began = datetime.now(UTC)
    proc = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log_file, stderr=log_file,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        startup_s = _wait("prometheus", lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200)

        def scraped() -> bool:
            q = {"query": "checkout_request_duration_p95_seconds"}
            return bool(httpx.get(f"{url}/api/v1/query", params=q, timeout=1).json()["data"]["result"])

        _wait("the first scrape", scraped)
        print(f"prometheus ready in {startup_s:.2f} s (promtool backfill {backfill_s:.2f} s)")
        yield Prom(url, exporter, began, startup_s, backfill_s)
    except TimeoutError as exc:
        unavailable(f"prometheus did not start: {exc}; log: {(work / 'prometheus.log').read_text()[-500:]}")
    finally:
        proc.terminate()
        proc.wait(10)
        log_file.close()
        exporter.close()
        shutil.rmtree(work, ignore_errors=True)


def test_prometheus_catalog_maps_metric_names_and_labels(prom: Prom) -> None:
    catalog = {s.label: s for s in PrometheusMetrics(prom.config()).catalog()}
    disk = catalog["disk_used_percent.value{host=db-host-02,path=/var/opt/mssql/data}"]
    assert disk.measurement == "disk_used_percent" and disk.field == "value" and disk.unit == "percent"
    target = f"127.0.0.1:{prom.exporter.port}"
    gauge = catalog[
        f"checkout_request_duration_p95_seconds.value{{instance={target},job=checkout,service=checkout}}"
    ]
    assert gauge.unit == "s" and gauge.points == []
    assert f"up.value{{instance={target},job=checkout}}" in catalog


def test_prometheus_range_query_over_three_days_of_history(prom: Prom) -> None:
    metrics = PrometheusMetrics(prom.config(step_s=60))
    now = datetime.now(UTC)
    (disk,) = metrics.series(match={"host": "db-host-02"}, start=now - timedelta(days=3), end=now)
    step = metrics.step_for(now - timedelta(days=3), now)
    assert step == 260  # 3 days / 1,000 points, above step_s
    gaps = {(b[0] - a[0]).total_seconds() for a, b in zip(disk.points, disk.points[1:], strict=False)}
    assert gaps == {260.0} and all(int(t.timestamp()) % 260 == 0 for t, _ in disk.points)
    assert 990 <= len(disk.points) <= 997
    values = [v for _, v in disk.points]
    assert values == sorted(values) and 60 <= values[0] < 60.1 and 68.5 < values[-1] <= 68.63
    assert metrics.series(match={"host.name": "db-host-02"}, start=now - timedelta(hours=1), end=now) == []


def test_metric_anomalies_sees_the_gauge_step_through_prometheus(prom: Prom) -> None:
    metrics = PrometheusMetrics(prom.config())
    match = {"service": "checkout"}

    def latest(n: int) -> list[float]:
        now = datetime.now(UTC)
        found = metrics.series(match=match, start=now - timedelta(seconds=30), end=now)
        gauge = [s for s in found if s.measurement == "checkout_request_duration_p95_seconds"]
        return [v for _, v in gauge[0].points[-n:]] if gauge else []

    _wait("four points at 0.12", lambda: latest(4) == [0.12] * 4)
    prom.exporter.latency_s = 0.65
    _wait("four points at 0.65", lambda: latest(4) == [0.65] * 4)
    now = datetime.now(UTC)
    result = metric_anomalies(ctx(metrics, now, history=now - prom.started_at), "checkout")
    step = next(f for f in result.findings if f.kind == "step_change")
    assert step.severity == "warning" and "(5.4x)" in step.title
    assert step.data["before"] == pytest.approx(0.12) and step.data["after"] == pytest.approx(0.65)


def test_prometheus_doctor(prom: Prom) -> None:
    (ok,) = PrometheusMetrics(prom.config()).doctor()
    assert ok.ok and ok.source == "prometheus:prometheus" and "Prometheus 2." in ok.detail
    assert ok.latency_ms is not None
    (wrong_url,) = PrometheusMetrics(prom.config(url=prom.url + "/prometheus")).doctor()
    assert not wrong_url.reachable and "HTTP 404" in wrong_url.detail and "base URL" in wrong_url.fix


# --- InfluxDB 2 (stand-in with recorded answers) ------------------------------------------------

TOKEN, ORG, BUCKET = "opscopilot-read-0f3c9a", "acme", "telegraf"


def _influx_error(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


@pytest.fixture(scope="session")
def influx2() -> Iterator[str]:
    """Stand-in for InfluxDB 2.7's query API (see the module docstring)."""
    recorded = {p.read_text().strip(): p.with_suffix(".csv").read_bytes() for p in RECORDED.glob("*.flux")}

    class Handler(QuietHandler):
        def _reply(
            self, status: int, body: bytes = b"", kind: str = "application/json; charset=utf-8"
        ) -> None:
            headers = {"X-Influxdb-Build": "OSS", "X-Influxdb-Version": "v2.7.11"}
            self.reply(status, body, headers | ({"Content-Type": kind} if body else {}))

        def do_GET(self) -> None:
            if self.path == "/ping":
                self._reply(204)
            else:
                self._reply(404, _influx_error("not found", "path not found"))

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path != "/api/v2/query":
                return self._reply(404, _influx_error("not found", "path not found"))
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                return self._reply(401, _influx_error("unauthorized", "unauthorized access"))
            org = (parse_qs(url.query).get("org") or parse_qs(url.query).get("orgID") or [""])[0]
            if org != ORG:
                return self._reply(404, _influx_error("not found", f'organization name "{org}" not found'))
            kind = (self.headers.get("Content-Type") or "").split(";")[0]
            if kind == "application/json":
                request = json.loads(body)
                annotations = set((request.get("dialect") or {}).get("annotations") or [])
                if not {"datatype", "group", "default"} <= annotations:
                    return self._reply(400, _influx_error("invalid", "stand-in: annotations needed to parse"))
                flux = request["query"]
            elif kind == "application/vnd.flux":
                flux = body.decode()
            else:
                return self._reply(400, _influx_error("invalid", f"invalid content type {kind!r}"))
            bucket = flux.split('from(bucket: "', 1)[-1].split('"', 1)[0]
            if bucket != BUCKET:
                msg = f'failed to initialize execute state: could not find bucket "{bucket}"'
                return self._reply(404, _influx_error("not found", msg))
            answer = recorded.get(flux.strip())
            if answer is None:
                return self._reply(
                    400, _influx_error("invalid", f"stand-in: no recorded answer for {flux!r}")
                )
            return self._reply(200, answer, "text/csv; charset=utf-8")

    with LoopbackServer(Handler) as server:
        yield server.url


def flux_config(url: str, **over: Any) -> InfluxConfig:
    base = {"name": "influx2", "url": url, "version": 2, "token": TOKEN, "org": ORG, "bucket": BUCKET}
    return InfluxConfig.model_validate(base | over)


def test_flux_catalog_from_annotated_csv(influx2: str) -> None:
    """Stand-in: several table schemas (double and long values, different tag sets) in one answer."""
    catalog = {s.label: s for s in InfluxMetrics(flux_config(influx2)).catalog()}
    assert set(catalog) == {
        "disk.used_percent{host=db-host-02,path=/var/opt/mssql/data}",
        "disk.used_percent{host=db-host-02,path=/var/opt/mssql/log}",
        "disk.used_percent{host=db-host-01,path=/}",
        "cpu.usage_user{cpu=cpu-total,host=db-host-02}",
        "cpu.usage_user{cpu=cpu-total,host=db-host-01}",
        "system.n_cpus{host=db-host-02}",
    }
    assert all(s.points == [] for s in catalog.values())


def test_capacity_forecast_over_flux_matches_replay(influx2: str) -> None:
    """Stand-in: the recorded week of db-host-02 read through the Flux path gives the replay finding."""
    flux = InfluxMetrics(flux_config(influx2))
    live = capacity_forecast(ctx(flux), "db-host-02")
    replay = capacity_forecast(ctx(ReplayMetrics(scenario().metrics)), "db-host-02")
    assert [f.model_dump() for f in live.findings] == [f.model_dump() for f in replay.findings]
    (series,) = [s for s in flux.series(match={"host": "db-host-02"}, start=NOW - timedelta(days=7), end=NOW)
                 if s.measurement == "cpu"]  # fmt: skip
    assert series.tags == {"cpu": "cpu-total", "host": "db-host-02"} and series.unit == "percent"


def test_flux_doctor_and_failures(influx2: str) -> None:
    """Stand-in: token, org and bucket errors as InfluxDB 2 reports them."""
    (ok,) = InfluxMetrics(flux_config(influx2)).doctor()
    assert ok.ok and "InfluxDB v2.7.11" in ok.detail and "2 series in the last hour" in ok.detail
    (bad_token,) = InfluxMetrics(flux_config(influx2, token="nope")).doctor()
    assert bad_token.reachable and bad_token.authenticated is False and "token" in bad_token.fix
    (no_bucket,) = InfluxMetrics(flux_config(influx2, bucket="telegarf")).doctor()
    assert no_bucket.authenticated and no_bucket.permissions_ok is False
    assert 'could not find bucket \\"telegarf\\"' in no_bucket.detail or "telegarf" in no_bucket.detail
    with pytest.raises(InfluxError, match="organization name"):
        InfluxMetrics(flux_config(influx2, org="acme-corp")).catalog()


# --- combined, timeouts -------------------------------------------------------------------------


def test_combined_merges_backends_and_isolates_a_dead_one(influx1: Influx1, prom: Prom) -> None:
    dead = PrometheusMetrics(PrometheusConfig(name="prom-dr", url=f"http://127.0.0.1:{_free_port()}"))
    combined = CombinedMetrics([InfluxMetrics(influx1.config()), PrometheusMetrics(prom.config()), dead])
    with collecting_notes() as notes:
        measurements = {s.measurement for s in combined.catalog()}
    assert {"disk", "cpu", "disk_used_percent", "checkout_request_duration_p95_seconds"} <= measurements
    assert list(combined.errors) == ["prom-dr"] and "cannot connect" in combined.errors["prom-dr"]
    assert len(notes) == 1 and notes[0].startswith("metrics from prom-dr:")
    result = capacity_forecast(ctx(combined), "db-host-02")
    assert any(f.kind == "days_until_full" and "used_percent" in f.title for f in result.findings)
    checks = {c.source: c for c in combined.doctor()}
    assert checks["influx:influx1"].ok and checks["prometheus:prometheus"].ok
    assert not checks["prometheus:prom-dr"].reachable


def test_combined_raises_only_when_every_backend_fails() -> None:
    dead = [
        PrometheusMetrics(PrometheusConfig(name=f"p{i}", url=f"http://127.0.0.1:{_free_port()}"))
        for i in range(2)
    ]
    with pytest.raises(SourceError, match=r"every metric backend failed: p0: .*cannot connect.* \| p1: "):
        CombinedMetrics(dead).series(match=None, start=NOW - timedelta(hours=1), end=NOW)
    with pytest.raises(ValueError, match="distinct names"):
        CombinedMetrics([dead[0], dead[0]])


def test_silent_servers_time_out_and_then_open_the_circuit() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        backends: list[InfluxMetrics | PrometheusMetrics] = [
            InfluxMetrics(
                InfluxConfig(url=url, version=1, database="telegraf", timeout_s=0.5), breaker_failures=1
            ),
            InfluxMetrics(flux_config(url, timeout_s=0.5), breaker_failures=1),
            PrometheusMetrics(PrometheusConfig(url=url, timeout_s=0.5), breaker_failures=1),
        ]
        window = {"match": {"host": "db-host-02"}, "start": NOW - timedelta(hours=1), "end": NOW}
        for backend in backends:
            name = type(backend).__name__
            started = time.monotonic()
            with pytest.raises((InfluxError, PrometheusError), match=r"no answer within 0\.5 s"):
                backend.series(**window)  # type: ignore[arg-type]
            assert time.monotonic() - started < 3, name
            started = time.monotonic()
            with pytest.raises(
                (InfluxError, PrometheusError), match="not called: circuit open after 1 timeout"
            ):
                backend.catalog()
            assert time.monotonic() - started < 0.1, name  # the breaker answers, not the server
            (check,) = backend.doctor()  # the doctor still tries the server
            assert not check.reachable and "timeout_s" in check.fix and check.circuit == "open"
            assert "queries: circuit open after 1 timeout" in check.detail


def test_backends_are_metric_sources(influx1: Influx1, influx2: str, prom: Prom) -> None:
    for source in [
        InfluxMetrics(influx1.config()),
        InfluxMetrics(flux_config(influx2)),
        PrometheusMetrics(prom.config()),
        CombinedMetrics([ReplayMetrics([])]),
    ]:
        assert isinstance(source, MetricSource)
