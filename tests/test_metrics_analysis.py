"""Time-series analyzers and the metrics view tools, against hand-worked arithmetic and example worlds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tools.metrics import analysis as an
from tools.metrics import signals as sg
from tools.metrics.views import METRICS_TOOLS, capacity_forecast, fmt_value, metric_anomalies, peer_comparison
from tools.metrics.workload import workload_attribution
from tools.replay import ReplayMetrics, ReplaySql
from tools.sources import SourceError, Sources, ToolContext
from tools.world import Series, SqlInstanceWorld, WaitRow, World

EXAMPLES = Path(__file__).resolve().parents[2].joinpath("shared/scenarios/examples")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def world(name: str) -> tuple[World, datetime]:
    doc = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return World.model_validate(doc["world"]), datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))


def series(values: Sequence[float], step: timedelta = timedelta(minutes=10), **kw: object) -> Series:
    fields: dict[str, object] = {"measurement": "m", "field": "f", "tags": {"host": "h1"}, **kw}
    return Series.model_validate({**fields, "points": [[T0 + i * step, v] for i, v in enumerate(values)]})


# --- baseline vs now ----------------------------------------------------------------------------


def test_robust_z_by_hand() -> None:
    # sample 10, 12, 11, 13, 50 -> median 12; |dev| 2, 0, 1, 1, 38 -> sorted 0, 1, 1, 2, 38 -> MAD 1
    # z(20) = (20 - 12) / (1.4826 * 1) = 5.3959
    med, mad, z = an.robust_z(20, [10, 12, 11, 13, 50])
    assert (med, mad) == (12, 1)
    assert z == pytest.approx(5.3959, abs=1e-4)


def test_baseline_vs_now_flags_a_jump() -> None:
    # earlier 10, 12, 11, 13 -> median 11.5; |dev| 1.5, 0.5, 0.5, 1.5 -> MAD 1.0
    # z = (20 - 11.5) / 1.4826 = 5.7332 >= 3.5, and 20 is 74% above 11.5: anomalous
    b = an.baseline_vs_now(series([10, 12, 11, 13, 20]))
    assert b is not None and b.median == 11.5 and b.mad == 1.0
    assert b.z == pytest.approx(5.7332, abs=1e-4) and b.anomalous
    assert b.latest == 20 and b.baseline_points == 4


def test_baseline_mad_zero_falls_back_to_mean_absolute_deviation() -> None:
    # earlier 5, 5, 5, 6, 5 -> median 5, MAD 0; mean |dev| = 1/5 = 0.2 -> scale 1.2533 * 0.2 = 0.25066
    # z(9) = 4 / 0.25066 = 15.958
    b = an.baseline_vs_now(series([5, 5, 5, 6, 5, 9]))
    assert b is not None and b.mad == 0
    assert b.z == pytest.approx(15.958, abs=1e-3) and b.anomalous


def test_baseline_perfectly_flat() -> None:
    off = an.baseline_vs_now(series([5, 5, 5, 5, 7]))
    assert off is not None and off.z is None and off.anomalous  # infinitely far from a flat line
    same = an.baseline_vs_now(series([5, 5, 5, 5, 5]))
    assert same is not None and same.z == 0 and not same.anomalous


def test_baseline_ignores_tiny_moves_on_a_steady_series() -> None:
    # earlier 100.0, 100.1, 99.9, 100.0 -> median 100.0, MAD 0.05 -> z(100.5) = 0.5 / 0.07413 = 6.7
    # but 100.5 is only 0.5% off the median (< 10%): not news
    b = an.baseline_vs_now(series([100.0, 100.1, 99.9, 100.0, 100.5]))
    assert b is not None and b.z == pytest.approx(6.745, abs=1e-3) and not b.anomalous


@pytest.mark.parametrize("values", [[], [1.0], [1.0, 2.0, 3.0]])
def test_baseline_needs_three_earlier_points(values: list[float]) -> None:
    assert an.baseline_vs_now(series(values)) is None


# --- step change --------------------------------------------------------------------------------


def test_step_change_on_the_itsm_change_world() -> None:
    w, _ = world("itsm-change-01")
    (latency,) = w.metrics
    step = an.step_change(latency)
    # before 120, 118, 125, 121 -> mean 121, SS = 1 + 9 + 16 + 0 = 26
    # after 640, 655, 648 -> mean 647.667, SS = 58.78 + 53.78 + 0.11 = 112.667
    # pooled sd = sqrt((26 + 112.667) / 5) = 5.2662; effect = 526.667 / 5.2662 = 100.01
    assert step is not None
    assert step.at == datetime(2026, 7, 8, 9, 40, tzinfo=UTC) and step.index == 4
    assert step.before == pytest.approx(121) and step.after == pytest.approx(647.667, abs=1e-3)
    assert step.ratio == pytest.approx(5.3526, abs=1e-4)  # shown as 5.4x
    assert step.effect == pytest.approx(100.01, abs=0.01)


def test_perfect_step_has_unbounded_effect() -> None:
    step = an.step_change(series([1, 1, 1, 5, 5, 5]))
    assert step is not None and step.index == 3 and step.effect is None and step.ratio == 5


def test_no_step_in_a_ramp_noise_or_a_short_series() -> None:
    w, _ = world("disk-forecast-01")
    data, log = w.metrics
    # the ramp's best split (3 | 4 points) has effect 8.73 / 2.94 = 2.97 < 4: a trend, not a step
    assert an.step_change(data) is None
    assert an.step_change(log) is None
    assert an.step_change(series([1, 2, 3])) is None  # needs 4 points
    assert an.step_change(series([7, 7, 7, 7])) is None  # no shift at all


def test_small_relative_step_is_ignored() -> None:
    # a clean shift from 100 to 110 (effect unbounded) is only 10% < 25%
    assert an.step_change(series([100, 100, 100, 110, 110, 110])) is None


def test_step_right_after_the_first_point() -> None:
    # CPU 18 then ~92 for the rest: one point before is enough when the level moved by >= 50%
    # split k=1: before 18 (SS 0), after 92, 93, 91, 92 (mean 92, SS 0 + 1 + 1 + 0 = 2)
    # pooled sd = sqrt(2 / 3) = 0.8165; effect = 74 / 0.8165 = 90.6
    step = an.step_change(series([18, 92, 93, 91, 92]))
    assert step is not None and step.index == 1 and step.before == 18 and step.after == 92
    assert step.effect == pytest.approx(90.63, abs=0.01)
    # a first-point outlier 28% above a steady level is not a step (a lone point needs 50%)
    assert an.step_change(series([1.24, 0.9, 0.91, 0.89, 0.9, 0.9])) is None


# --- forecast -----------------------------------------------------------------------------------


def test_disk_forecast_by_hand() -> None:
    w, now = world("disk-forecast-01")
    data = w.metrics[0]
    f = an.forecast_to_threshold(data, 100)
    # x in days 0, .5, ..., 3 (mean 1.5, Sxx = 2.25+1+.25+0+.25+1+2.25 = 7)
    # Sxy = sum((x - 1.5) * y) = -103.65 - 71.6 - 37 + 0 + 39.5 + 81.5 + 126.15 = 34.9
    # slope = 34.9 / 7 = 4.98571 %/day; from 84.1: 15.9 / 4.98571 = 3.18911 days = 76.54 h
    # ETA = 2026-05-10 08:00 + 3 d 4 h 32 min 19 s = 2026-05-13 12:32:19 UTC
    assert f is not None and f.rising and not f.reached
    assert f.slope_per_day == pytest.approx(4.98571, abs=1e-5)
    assert f.days == pytest.approx(3.18911, abs=1e-5)
    assert (
        f.eta is not None and abs((f.eta - datetime(2026, 5, 13, 12, 32, 19, tzinfo=UTC)).total_seconds()) < 1
    )
    assert f.latest_ts == now and f.r2 > 0.99


def test_forecast_of_a_draining_free_space_series() -> None:
    # 300, 200, 100 GB an hour apart: -100 GB/h, 100 GB left -> empty in 1 hour
    s = series([300e9, 200e9, 100e9], step=timedelta(hours=1), field="free_bytes", unit="bytes")
    f = an.forecast_to_threshold(s, 0, rising=False)
    assert f is not None and f.hours == pytest.approx(1.0)
    assert f.eta == T0 + timedelta(hours=3)


def test_forecast_reached_flat_and_wrong_direction() -> None:
    full = an.forecast_to_threshold(series([95, 99, 100.5]), 100, rising=True)
    assert full is not None and full.reached and full.seconds_to_threshold == 0
    falling = an.forecast_to_threshold(series([80, 70, 60]), 100)
    assert falling is not None and falling.seconds_to_threshold is None and falling.eta is None
    # the flat log volume: slope 0.13 %/day (Sxy 0.65 / Sxx 5) -> (100 - 40.8) / 0.13 = 455 days
    log = world("disk-forecast-01")[0].metrics[1]
    slow = an.forecast_to_threshold(log, 100)
    assert slow is not None and slow.days == pytest.approx(455.4, abs=0.1)
    assert an.forecast_to_threshold(series([1, 2]), 100) is None  # needs 3 points


def test_capacity_limits() -> None:
    w, _ = world("disk-forecast-01")
    assert an.capacity_limit(w.metrics[0]) == (100.0, True)
    free = series([1], measurement="cloudwatch_rds", field="FreeStorageSpace", tags={"db_instance": "x"})
    assert an.capacity_limit(free) == (0.0, False)
    for measurement, field in [("cloudwatch_rds", "CPUUtilization"), ("cloudwatch_rds", "FreeableMemory")]:
        assert an.capacity_limit(series([1], measurement=measurement, field=field)) is None
    assert (
        an.capacity_limit(series([1], measurement="sqlserver_cpu", field="cpu_percent", unit="percent"))
        is None
    )


def test_sustained_high_utilisation() -> None:
    cpu_series = series(
        [40, 86, 91, 88, 93], measurement="cloudwatch_rds", field="CPUUtilization", unit="Percent"
    )
    assert an.is_utilisation(cpu_series)
    high = an.sustained_high(cpu_series)
    # latest 93 >= 90; trailing run >= 85: 93, 88, 91, 86 -> 4 points since the second point
    assert high is not None and high.points == 4 and high.since == T0 + timedelta(minutes=10)
    assert an.sustained_high(series([95, 95, 89])) is None  # not high now
    share = series([82.1], field="db_load_share", unit="percent")
    assert not an.is_utilisation(share)  # a share of load is not a utilisation
    assert not an.is_utilisation(series([1], field="FreeStorageSpace", unit="Percent"))


def test_direction_of_bad() -> None:
    assert an.higher_is_worse(series([1], field="p95_latency_ms")) is True
    assert an.higher_is_worse(series([1], field="FreeStorageSpace")) is False
    assert an.higher_is_worse(series([1], field="WriteIOPS")) is None


def test_breakdowns_of_snapshot_series() -> None:
    def pi(dim: str, key: str, who: str, v: float) -> Series:
        tags = {"db_instance": "catalog-prod", "dimension": dim, key: who}
        return series([v], measurement="performance_insights", field="db_load", unit="AAS", tags=tags)

    members = [pi("db.user", "db_user", "catalog_svc", 0.5), pi("db.user", "db_user", "api_reader", 7.2)]
    lone = pi("db.host", "db_host", "10.0.2.71", 4.1)  # a group of one is no breakdown
    (b,) = an.breakdowns([*members, lone, series([1, 2, 3, 4])])
    assert (b.by, b.field, b.unit) == ("db.user", "db_load", "AAS")
    assert b.items == [("api_reader", 7.2), ("catalog_svc", 0.5)]


# --- peers --------------------------------------------------------------------------------------


def cpu(host: str, value: float, **tags: str) -> Series:
    return series([value], measurement="cpu", field="usage", tags={"host": host, **tags})


def test_compare_peers_by_hand() -> None:
    hosts = [cpu("a", 20), cpu("b", 22), cpu("c", 21), cpu("d", 80)]
    # d vs others 20, 22, 21: median 21, |dev| 1, 1, 0 -> MAD 1 -> z = 59 / 1.4826 = 39.8
    # a vs others 22, 21, 80: median 22, |dev| 0, 1, 58 -> MAD 1 -> z = -2 / 1.4826 = -1.35: in line
    (outlier,) = an.compare_peers(hosts)
    assert outlier.tags["host"] == "d" and outlier.peer_median == 21 and outlier.peers == 3
    assert outlier.z == pytest.approx(39.795, abs=1e-3) and outlier.ratio == pytest.approx(80 / 21)


def test_compare_peers_needs_three_of_the_same_kind() -> None:
    assert an.compare_peers([cpu("a", 20), cpu("d", 80)]) == []
    # a different path tag makes a different kind of series, not a peer
    mixed = [cpu("a", 20, path="/"), cpu("b", 22, path="/data"), cpu("d", 80, path="/log")]
    assert an.compare_peers(mixed) == []


# --- view tools ---------------------------------------------------------------------------------


def ctx_for(metrics: object, now: datetime) -> ToolContext:
    return ToolContext(
        sources=Sources(metrics=metrics),  # type: ignore[arg-type]
        now=now,
        start=now - timedelta(hours=6),
        end=now,
        history_start=now - timedelta(days=7),
    )


class BrokenMetrics:
    def catalog(self) -> list[Series]:
        raise SourceError("influx unreachable")

    def series(self, **kwargs: object) -> list[Series]:
        raise SourceError("influx unreachable")


def test_step_change_finding_on_the_itsm_change_world() -> None:
    w, now = world("itsm-change-01")
    result = metric_anomalies(ctx_for(ReplayMetrics(w.metrics), now), "payments-api")
    (finding,) = result.findings
    assert finding.kind == "step_change" and finding.severity == "warning"
    assert finding.title == "Step change at 09:40 UTC on payments-api p95_latency_ms: 121 ms → 648 ms (5.4x)"
    assert finding.evidence == ["metric_anomalies@payments-api"]
    assert result.evidence[0].rows[0]["status"] == "step change"


def test_disk_forecast_finding_and_ticket() -> None:
    w, now = world("disk-forecast-01")
    result = capacity_forecast(ctx_for(ReplayMetrics(w.metrics), now), "db-host-02")
    (finding,) = result.findings  # the flat log volume gives nothing
    assert finding.kind == "days_until_full" and finding.severity == "warning"
    assert finding.title == (
        "db-host-02 /var/opt/mssql/data used_percent 84.1% rising 5.0 points/day: "
        "full (100%) in 3.2 days (77 hours), around 2026-05-13 12:32 UTC"
    )
    assert finding.remediation is not None and finding.remediation.action == "create_ticket"
    assert finding.remediation.target == "db-host-02 /var/opt/mssql/data"
    assert result.evidence[0].row_count == 2


def test_healthy_series_say_so() -> None:
    w = World.model_validate(yaml.safe_load((EXAMPLES / "healthy-01.yaml").read_text())["world"])
    now = datetime(2026, 1, 20, 11, tzinfo=UTC)
    ctx = ctx_for(ReplayMetrics(w.metrics), now)
    (finding,) = metric_anomalies(ctx, "sql-prod-01").findings
    assert finding.kind == "metrics_normal" and "within normal bounds (no anomalies" in finding.title
    assert capacity_forecast(ctx, "sql-prod-01").findings == []  # CPU is not capacity


def test_high_cpu_and_breakdown_findings() -> None:
    cpu_series = series(
        [91, 92, 93, 92, 93],
        measurement="cloudwatch_rds",
        field="CPUUtilization",
        unit="Percent",
        tags={"db_instance": "search-prod"},
    )
    loads = [
        series(
            [v],
            measurement="pi",
            field="db_load",
            unit="AAS",
            tags={"db_instance": "search-prod", "db_user": u},
        )
        for u, v in (("search_svc", 7.0), ("search_api", 0.6))
    ]
    ctx = ctx_for(ReplayMetrics([cpu_series, *loads]), T0 + timedelta(hours=1))
    high, breakdown = metric_anomalies(ctx, "search-prod").findings
    assert high.kind == "metric_high" and high.severity == "warning"
    assert high.title == "search-prod CPUUtilization high at 93.0% — at or above 85% since 00:00 UTC"
    # shares: 7.0 / 7.6 = 92%, 0.6 / 7.6 = 8%
    assert breakdown.kind == "metric_breakdown"
    assert (
        breakdown.title
        == "search-prod db_load by db_user (pi): search_svc 7 AAS (92%), search_api 0.6 AAS (8%)"
    )


def test_free_storage_running_out_pages_oncall() -> None:
    s = series(
        [300e9, 200e9, 100e9],
        step=timedelta(hours=1),
        measurement="cloudwatch_rds",
        field="FreeStorageSpace",
        unit="Bytes",
        tags={"db_instance": "orders-prod", "stat": "Minimum"},
    )
    (finding,) = capacity_forecast(
        ctx_for(ReplayMetrics([s]), T0 + timedelta(hours=2)), "orders-prod"
    ).findings
    assert (
        finding.severity == "critical" and finding.remediation and finding.remediation.action == "page_oncall"
    )
    # 100 GB/h, shown per minute because it runs out within 2 hours: 100 / 60 = 1.67 GB/min
    assert finding.title == (
        "orders-prod FreeStorageSpace 100.0 GB free, falling 1.7 GB/min: "
        "out of space in 1.0 hours, around 2026-01-01 03:00 UTC"
    )


def test_peer_comparison_tool() -> None:
    hosts = [cpu("a", 20), cpu("b", 22), cpu("c", 21), cpu("d", 80)]
    ctx = ctx_for(ReplayMetrics(hosts), T0 + timedelta(hours=1))
    (finding,) = peer_comparison(ctx, "d").findings
    assert finding.kind == "peer_outlier" and "d usage at 80 vs peer median 21" in finding.title
    assert [f.kind for f in peer_comparison(ctx, "a").findings] == ["peers_normal"]


@pytest.mark.parametrize("metrics", [BrokenMetrics(), None])
def test_failing_or_missing_source_becomes_evidence(metrics: object) -> None:
    for tool in METRICS_TOOLS:
        result = tool(ctx_for(metrics, T0), "db-1")
        (ev,) = result.evidence
        assert ev.error and ev.id == f"{tool.spec.name}@db-1" and ev.specialist == "metrics"
        assert result.findings == []


def test_entity_matching_uses_any_tag_and_prometheus_instances() -> None:
    s1 = series([1, 1, 1, 1], tags={"service": "api"})
    s2 = series([1, 1, 1, 1], tags={"instance": "db-1:9100"}, field="g")
    s3 = series([1, 1, 1, 1], tags={"host": "other"}, field="h")
    ctx = ctx_for(ReplayMetrics([s1, s2, s3]), T0 + timedelta(hours=1))
    assert [r["series"] for r in metric_anomalies(ctx, "db-1").evidence[0].rows] == [s2.label]
    assert [r["series"] for r in metric_anomalies(ctx, "api").evidence[0].rows] == [s1.label]


def test_units_people_read() -> None:
    assert fmt_value(84.06, "percent") == "84.1%"
    assert fmt_value(647.67, "ms") == "648 ms"
    assert fmt_value(14_063_512_655, "Bytes") == "14.1 GB"
    assert fmt_value(3120, "Count/Second") == "3,120/s"
    assert fmt_value(1.5, None) == "1.5"
    assert fmt_value(80.0, None) == "80" and fmt_value(0.0, "count") == "0"
    assert fmt_value(0.0054, "Seconds") == "5.4 ms" and fmt_value(1.297, "Seconds") == "1.3 s"


# --- steady climbs, brief excursions, recovery, write-heavy shifts ------------------------------


def minutes(values: list[float], **kw: object) -> Series:
    return series(values, step=timedelta(minutes=1), **kw)


def test_rising_trend_by_hand() -> None:
    # 0, 60, ..., 300 a minute apart: an exact line, slope 60/min = 1/s, r² 1; from 0 any rise counts
    t = sg.rising_trend(minutes([0, 60, 120, 180, 240, 300]))
    assert t is not None and t.slope_per_s == pytest.approx(1.0) and t.r2 == pytest.approx(1.0)
    assert (t.first, t.latest, t.points, t.per_minute, t.minutes) == (0, 300, 6, pytest.approx(60), 5)
    assert sg.rising_trend(minutes([5, 9, 4, 8, 5, 9])) is None  # noise: r² far below 0.8
    assert sg.rising_trend(minutes([100, 101, 102, 103, 104])) is None  # a clean line, but only +4%
    assert sg.rising_trend(minutes([0, 10, 20, 30, 40, 10])) is None  # 10 < 0.9 x 40: back down
    assert sg.rising_trend(minutes([0, 60, 120, 180])) is None  # needs 5 points


def test_climbing_follows_a_curve_a_line_would_miss() -> None:
    # 100 -> 200 slowing down near the top: all 5 moves up, +100% >= 5%; the line fits only r² 0.81
    c = sg.climbing(series([100, 150, 180, 195, 199, 200]))
    assert c is not None and (c.first, c.latest) == (100, 200) and c.r2 == pytest.approx(0.8064, abs=1e-4)
    assert sg.climbing(series([100, 120, 100, 120, 100, 130])) is None  # 3 of 5 moves up < 80%
    assert sg.climbing(series([100, 110, 120, 10, 130, 140])) is None  # a drop (-110) bigger than the rise


def test_replication_lag_series() -> None:
    assert sg.is_replication_lag(series([1], measurement="cloudwatch_rds", field="ReplicaLag"))
    assert sg.is_replication_lag(series([1], measurement="pg", field="pg_replication_lag_seconds"))
    assert sg.is_replication_lag(series([1], measurement="mysql_slave_status", field="seconds_behind_master"))
    assert not sg.is_replication_lag(series([1], measurement="kafka", field="consumer_lag"))
    assert not sg.is_replication_lag(series([1], field="p95_latency_ms"))


def test_brief_excursion_by_hand() -> None:
    # before index 5: 312, 318, 314, 310, 307 -> median 312; |dev| 0, 6, 2, 2, 5 -> MAD 2 -> s = 2.9652
    # 0 is 312 off: >= 5s (14.8), >= 50% of 312 (156), >= 1.5 x the widest earlier deviation (9): far,
    # and so is the next 0; 287 (25 off) is not; every point after is within max(3.5s, 20%) = 62.4
    e = sg.brief_excursion(minutes([312, 318, 314, 310, 307, 0, 0, 287, 308, 315, 312]))
    assert e is not None and e.direction == "dip" and (e.extreme, e.baseline, e.points) == (0, 312, 2)
    assert (e.start, e.end, e.recovered_at) == (
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=6),
        T0 + timedelta(minutes=7),
    )
    # a recurring peak: 30 is followed by 35 (not back), and 35 is only 25 off vs an earlier 20 (< 1.5 x)
    assert sg.brief_excursion(series([10.0] * 6 + [30, 10, 10, 35, 10, 10])) is None
    # no way back: 0, 0 then 5, 5 (5 off > the band of 2) -> never recovered
    assert sg.brief_excursion(series([10, 10, 10, 10, 0, 0, 5, 5])) is None
    free = minutes([300, 300, 300, 300, 10, 300, 300], field="FreeStorageSpace", unit="Bytes")
    assert sg.brief_excursion(free) is None  # capacity is the forecast's business


def test_resumed_after_by_hand() -> None:
    # before 00:04: 100, 102, 98, 100 -> median 100; |dev| 0, 2, 2, 0 -> MAD 1 -> band max(20, 5.19) = 20
    # from 00:05: 0 (not back), then 90, 101, 99, 100 all back -> since 00:06, median of those 99.5
    s = minutes([100, 102, 98, 100, 0, 0, 90, 101, 99, 100])
    r = sg.resumed_after(s, T0 + timedelta(minutes=4), T0 + timedelta(minutes=5))
    assert r is not None and r.resumed and r.since == T0 + timedelta(minutes=6)
    assert (r.before, r.after, r.points_after) == (100, 99.5, 5)
    # latency at 5 after a baseline of 10: 5 off > band 2, but lower latency counts as back
    latency = minutes([10, 10, 10, 10, 50, 5, 5, 5])
    start, end = T0 + timedelta(minutes=4), T0 + timedelta(minutes=5)
    better = sg.resumed_after(latency, start, end, worse_when_higher=True)
    assert better is not None and better.resumed and better.since == end
    either = sg.resumed_after(latency, start, end)
    assert either is not None and not either.resumed and either.since is None
    assert sg.resumed_after(latency, T0 + timedelta(minutes=2), end) is None  # 2 points before: too few


def test_io_side_and_write_shift() -> None:
    kinds = {
        ("WriteIOPS", "Count/Second"): "write",
        ("TransactionLogsGeneration", "Bytes/Second"): "wal",
        ("wal_bytes", None): "wal",
        ("ReadIOPS", "Count/Second"): "read",
        ("WriteLatency", "Milliseconds"): None,
        ("NetworkReceiveThroughput", "Bytes/Second"): None,
    }
    for (field, unit), side in kinds.items():
        assert sg.io_side(series([1], field=field, unit=unit)) == side, field
    writes = minutes([100, 100, 100, 400, 400, 400], field="WriteIOPS", unit="Count/Second")
    reads = minutes([50, 52, 48, 50, 51, 49], field="ReadIOPS", unit="Count/Second")
    # the write step (4x at 00:03); reads average 50 before 00:03 and 50 from it: 1.0x, level
    w = sg.write_shift([(writes, an.step_change(writes)), (reads, None)])
    assert w is not None and w.writes == [("WriteIOPS", 4.0, "write")] and w.reads == [("ReadIOPS", 1.0)]
    assert w.since == T0 + timedelta(minutes=3)
    busy = minutes([50, 50, 50, 100, 100, 100], field="ReadIOPS", unit="Count/Second")
    assert sg.write_shift([(writes, an.step_change(writes)), (busy, an.step_change(busy))]) is None
    assert sg.write_shift([(writes, an.step_change(writes))]) is None  # no read series: cannot say


def _rds(field: str, values: list[float], unit: str, instance: str = "db-a") -> Series:
    tags = {"db_instance": instance, "stat": "Average"}
    return minutes(values, measurement="cloudwatch_rds", field=field, unit=unit, tags=tags)


def test_metric_anomalies_reports_lag_climb_excursion_and_write_shift() -> None:
    lag = _rds("ReplicaLag", [0, 60, 120, 180, 240, 300], "Seconds", instance="db-a-replica")
    ctx = ctx_for(ReplayMetrics([lag]), T0 + timedelta(minutes=5))
    (climb,) = metric_anomalies(ctx, "db-a-replica").findings
    assert climb.kind == "rising_trend" and climb.severity == "warning"
    assert (
        climb.title
        == "Replication lag on db-a-replica reached 300 s (rising 60 s/min since 00:00 UTC; ReplicaLag)"
    )

    conns = _rds("DatabaseConnections", [312, 318, 314, 310, 307, 0, 0, 287, 308, 315, 312], "Count")
    ctx = ctx_for(ReplayMetrics([conns]), T0 + timedelta(minutes=10))
    clear, dip = metric_anomalies(ctx, "db-a").findings
    assert clear.kind == "metrics_normal" and "within normal bounds now" in clear.title
    assert dip.kind == "brief_excursion" and dip.severity == "info"
    assert dip.title == (
        "db-a DatabaseConnections dropped to 0 from 00:05 UTC to 00:06 UTC (baseline 312) "
        "and recovered by 00:07 UTC"
    )

    writes = _rds("WriteIOPS", [100, 100, 100, 400, 400, 400], "Count/Second")
    reads = _rds("ReadIOPS", [50, 52, 48, 50, 51, 49], "Count/Second")
    ctx = ctx_for(ReplayMetrics([writes, reads]), T0 + timedelta(minutes=5))
    step, shift = metric_anomalies(ctx, "db-a").findings
    assert step.kind == "step_change" and shift.kind == "write_heavy"
    assert shift.title == (
        "Write-heavy workload on db-a since 00:03 UTC: writes stepped up (WriteIOPS 4.0x) "
        "while reads held their level (ReadIOPS 1.0x)"
    )


# --- workload attribution (metrics + the instance's statements and waits) ------------------------

OPENSRE = Path(__file__).resolve().parents[2].joinpath("shared/external/opensre-rds-postgres")


def opensre_ctx(prefix: str) -> ToolContext:
    doc = yaml.safe_load(next(OPENSRE.glob(f"opensre-rds-{prefix}-*.yaml")).read_text())
    w, now = World.model_validate(doc["world"]), datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))
    ctx = ctx_for(ReplayMetrics(w.metrics), now)
    ctx.sources.sql = ReplaySql(w.sql)
    return ctx


def test_cpu_attributed_to_one_query() -> None:
    # 004: CPU waits 7,440,000 ms; SELECT * FROM orders 7,080,000 ms of CPU -> 95%;
    # statement time 8,640,000 of 9,240,000 ms -> 94%; db load from 14:01 on: 146.6 / 19 = 7.72 AAS,
    # of which 0.935 x 7.72 = 7.2
    (f,) = workload_attribution(opensre_ctx("004"), "catalog-prod").findings
    assert f.kind == "cpu_attribution" and f.severity == "warning"
    assert f.title == (
        "CPU on catalog-prod (CPUUtilization 18.3% → 94.5% at 14:01 UTC) is mostly one query: "
        "SELECT * FROM orders — 95% of CPU time, 94% of statement time, "
        "≈ 7.2 of 7.7 average active sessions (db load)"
    )


def test_cpu_and_writes_from_two_workloads_or_one() -> None:
    # 006: the SELECT holds 1,920,000 of 2,760,000 ms of CPU waits (70%) and writes nothing; the UPDATE
    # holds 7,080,000 of 9,240,000 ms of statement time (77%)
    (split,) = workload_attribution(opensre_ctx("006"), "analytics-prod").findings
    assert split.kind == "independent_workloads"
    assert "read-only query SELECT COUNT(*), AVG(revenue), MAX(revenue) (70% of CPU time)" in split.title
    assert "from UPDATE event_stream SET processed (77% of statement time)" in split.title
    assert "causally independent" in split.detail
    # 001: statements list more CPU (1,630,314 ms) than the CPU waits, so shares are of the statements':
    # the UPDATE holds 1,386,126 ms (85%) and 6,047,244 of 7,031,178 ms of statement time (86%)
    (same,) = workload_attribution(opensre_ctx("001"), "payments-prod").findings
    assert same.kind == "same_workload"
    assert "same statement: UPDATE orders SET status (85% of CPU time, 86% of statement time)" in same.title
    assert (
        workload_attribution(opensre_ctx("001"), "payments-prod-replica-1").findings == []
    )  # no SQL instance


def test_connections_climbing_with_idle_client_sessions() -> None:
    # 002: Client:ClientRead 5,220,000 of 6,480,000 ms of waits (81%); connections 312 -> 494, every move up
    (f,) = workload_attribution(opensre_ctx("002"), "payments-prod").findings
    assert f.kind == "connection_pool_leak" and f.data["client_wait_share_pct"] == pytest.approx(
        80.56, abs=0.01
    )
    assert f.title.startswith("DatabaseConnections rose from 312 to 494 on payments-prod since 11:50 UTC")
    assert "81% of database wait time is idle client sessions (Client:ClientRead)" in f.title


def test_workload_attribution_with_a_known_connection_limit() -> None:
    conns = _rds("DatabaseConnections", [400, 430, 455, 470, 480], "Count")
    limit = _rds("max_connections", [500, 500, 500, 500, 500], "Count")
    sql = ReplaySql(
        {
            "db-a": SqlInstanceWorld(
                engine="postgresql",
                waits=[
                    WaitRow(wait_type="Client:ClientRead", wait_time_ms=900_000),
                    WaitRow(wait_type="CPU", wait_time_ms=100_000),
                ],
            )
        }
    )
    ctx = ctx_for(ReplayMetrics([conns, limit]), T0 + timedelta(minutes=4))
    ctx.sources.sql = sql
    (f,) = workload_attribution(ctx, "db-a").findings
    # 480 of 500 = 96%; client waits 900,000 of 1,000,000 ms = 90%
    assert f.title.startswith(
        "DatabaseConnections rose from 400 to 480 of max_connections (500, 96%) on db-a"
    )
    assert "90% of database wait time" in f.title


def test_prometheus_series_are_named_and_classified_by_their_metric_name() -> None:
    """Prometheus series carry field `value`; the metric name (measurement) says what they measure."""
    from tools.metrics.analysis import capacity_limit
    from tools.metrics.wording import series_name

    avail = Series(
        measurement="node_filesystem_avail_bytes",
        tags={"instance": "db-host-02:9100", "mountpoint": "/data"},
        field="value",
        points=[(datetime(2026, 5, 10, tzinfo=UTC), 5e11), (datetime(2026, 5, 11, tzinfo=UTC), 4e11)],
    )
    assert capacity_limit(avail) == (0.0, False)  # free space drains towards 0
    assert series_name(avail, "db-host-02").endswith("/data node_filesystem_avail_bytes")
    cpu = avail.model_copy(update={"measurement": "node_load1"})
    assert capacity_limit(cpu) is None


def test_a_step_that_ends_is_measured_over_the_excursion_only() -> None:
    """Latency 40x from the fifth point, normal again at the last: the new level is the excursion's
    mean (not diluted by the recovery), and where it ended is said. (A short blip that came back is a
    brief excursion, tools.metrics.signals, not a step.)"""
    step = an.step_change(series([12, 11, 13, 12, 10] * 6 + [480, 488, 477, 490, 475, 12]))
    assert step is not None and step.index == 30 and step.points_after == 5
    assert step.after == pytest.approx(482)
    assert step.back_at is not None and step.back_level == pytest.approx(12)
    lasting = an.step_change(series([12, 11, 13, 12, 480, 488, 477, 490]))
    assert lasting is not None and lasting.back_at is None and lasting.points_after == 4
