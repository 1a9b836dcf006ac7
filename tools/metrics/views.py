"""The metrics specialist's view tools: read an entity's series, keep them as evidence, find what moved."""

from __future__ import annotations

import logging
from typing import Any

from tools.base import (
    ActionName,
    ActionTarget,
    Evidence,
    Finding,
    ProposedAction,
    Severity,
    ToolResult,
    ViewTool,
    view_tool,
)
from tools.common import finding_on, keep_rows, record_failure
from tools.metrics import analysis as an
from tools.metrics import bounded as bd
from tools.metrics import signals as sg
from tools.metrics.chart import attach_points
from tools.metrics.reading import read_series
from tools.metrics.signal_findings import excursion_finding, trend_finding, write_shift_finding
from tools.metrics.wording import _duration, _rate, _when, fmt_value, series_name
from tools.metrics.workload import workload_attribution
from tools.sources import ToolContext
from tools.thresholds import Thresholds, thresholds
from tools.world import Series

log = logging.getLogger(__name__)

MAX_ROWS = 50
HORIZON_DAYS = an.HORIZON_DAYS


# --- plumbing -----------------------------------------------------------------------------------


def _judge(s: Series, went_up: bool) -> tuple[Severity, str]:
    """Warning, unless the move is an improvement for a metric whose good direction is known."""
    worse_high = an.higher_is_worse(s)
    if worse_high is None or worse_high == went_up:
        return Severity.WARNING, ""
    return Severity.INFO, " This is an improvement (a recovery), not a degradation."


# --- metric_anomalies ---------------------------------------------------------------------------


def _step_finding(ev: Evidence, s: Series, step: an.StepChange) -> Finding:
    name = series_name(s, ev.entity)
    if step.ratio is not None and step.ratio >= 1:
        change = f" ({step.ratio:.1f}x)"
    elif step.ratio is not None and step.ratio > 0:
        change = f" ({(1 - step.ratio) * 100:.0f}% lower)"
    else:
        change = ""
    last = s.points[-1]
    title = (
        f"Step change at {_when(step.at, last[0])} on {name}: "
        f"{fmt_value(step.before, s.unit)} → {fmt_value(step.after, s.unit)}{change}"
    )
    if step.back_at is not None and step.back_level is not None:
        title += f" until {_when(step.back_at, last[0])}, then back at {fmt_value(step.back_level, s.unit)}"
    severity, note = _judge(s, step.after > step.before)
    after = [v for t, v in s.points if t >= step.at and (step.back_at is None or t < step.back_at)]
    extreme = max(after) if step.after > step.before else min(after)
    peak = f", {'peak' if step.after > step.before else 'lowest'} {fmt_value(extreme, s.unit)}"
    peak = peak if abs(extreme - step.after) >= 0.1 * abs(step.after) else ""
    detail = (
        f"{step.points_before} point{'s' if step.points_before > 1 else ''} before averaged "
        f"{fmt_value(step.before, s.unit)}; "
        f"{step.points_after} points from {_when(step.at, last[0])} "
        f"{'until ' + _when(step.back_at, last[0]) if step.back_at else 'on'} averaged "
        f"{fmt_value(step.after, s.unit)}{peak}; latest {fmt_value(last[1], s.unit)}.{note}"
    )
    return finding_on(
        ev, "step_change", severity, title, detail, series=s.label, **step.model_dump(mode="json")
    )


def _anomaly_finding(ev: Evidence, s: Series, b: an.BaselineCheck) -> Finding:
    name = series_name(s, ev.entity)
    score = "the baseline was flat" if b.z is None else f"robust z {b.z:+.1f}"
    now, usual = fmt_value(b.latest, s.unit), fmt_value(b.median, s.unit)
    title = f"{name} at {now} now vs baseline median {usual} ({score})"
    severity, note = _judge(s, b.latest > b.median)
    detail = f"Baseline: {b.baseline_points} earlier points since {s.points[0][0]:%Y-%m-%d %H:%M} UTC.{note}"
    return finding_on(
        ev, "metric_anomaly", severity, title, detail, series=s.label, **b.model_dump(mode="json")
    )


def _high_finding(ev: Evidence, s: Series, h: an.HighLevel) -> Finding:
    name, last = series_name(s, ev.entity), s.points[-1][0]
    since = _when(h.since, last)
    title = f"{name} high at {fmt_value(h.latest, s.unit)} — at or above {h.floor:g}% since {since}"
    detail = f"{h.points} of {len(s.points)} points in the window at or above {h.floor:g}%."
    return finding_on(
        ev, "metric_high", Severity.WARNING, title, detail, series=s.label, **h.model_dump(mode="json")
    )


def _breakdown_finding(ev: Evidence, b: an.Breakdown) -> Finding:
    total = sum(v for _, v in b.items)
    share = total > 0 and (b.unit or "").lower() not in ("percent", "%")
    parts = [
        f"{label} {fmt_value(v, b.unit)}" + (f" ({v / total:.0%})" if share else "")
        for label, v in b.items[:6]
    ]
    title = f"{ev.entity} {b.field} by {b.by} ({b.measurement}): {', '.join(parts)}"
    return finding_on(ev, "metric_breakdown", Severity.INFO, title, "", **b.model_dump(mode="json"))


def _breach_finding(ev: Evidence, s: Series, b: bd.AbsoluteBreach) -> Finding:
    name = series_name(s, ev.entity)
    level, limit = fmt_value(b.level, s.unit), fmt_value(b.threshold, s.unit)
    if b.what == "pool":
        latest = fmt_value(b.latest, s.unit)
        title = f"Pool saturated: {name} at {level} of its size (at or above {limit}), latest {latest}"
    else:
        latest = fmt_value(b.latest, s.unit)
        title = f"{name} error rate at {level} — above the {limit} absolute threshold, latest {latest}"
    detail = (
        f"Median of the recent points over {b.points} points; no baseline is needed to call this bad "
        "(it has not changed, it has been like this all along)."
    )
    severity = Severity.CRITICAL if b.critical else Severity.WARNING
    kind = "pool_saturated" if b.what == "pool" else "error_rate_high"
    return finding_on(ev, kind, severity, title, detail, series=s.label, **b.model_dump(mode="json"))


def _judge_series(
    ev: Evidence, s: Series, limits: Thresholds | None = None
) -> tuple[Finding | None, dict[str, Any], an.StepChange | None]:
    limits = limits or Thresholds()
    step, base = an.step_change(s), an.baseline_vs_now(s)
    high = an.sustained_high(s) if an.is_utilisation(s) else None
    breach = bd.absolute_breach(
        s, limits.error_rate_warning_pct, limits.error_rate_critical_pct, limits.pool_saturation
    )
    finding, status = None, "too few points" if base is None else "ok"
    if breach is not None and breach.what == "pool":
        finding, status = _breach_finding(ev, s, breach), "pool saturated"
    elif step is not None:
        finding, status = _step_finding(ev, s, step), "step change"
    elif base is not None and base.anomalous:
        finding, status = _anomaly_finding(ev, s, base), "anomaly"
    elif high is not None:
        finding, status = _high_finding(ev, s, high), "high"
    elif (
        an.higher_is_worse(s) is not False
        and an.capacity_limit(s) is None
        and (trend := sg.rising_trend(s)) is not None
    ):
        finding, status = trend_finding(ev, s, trend), "rising"
    elif breach is not None:
        finding, status = _breach_finding(ev, s, breach), "above absolute threshold"
    elif (excursion := sg.brief_excursion(s)) is not None:
        finding, status = excursion_finding(ev, s, excursion), "recovered excursion"
    row = {
        "series": s.label,
        "unit": s.unit,
        "points": len(s.points),
        "latest": s.points[-1][1] if s.points else None,
        "median": None if base is None else base.median,
        "z": None if base is None or base.z is None else round(base.z, 2),
        "step_at": None if step is None else step.at.isoformat(),
        "status": status,
    }
    return finding, row, step


def _all_clear(ev: Evidence, series: list[Series], checked: int, recovered: int = 0) -> Finding:
    entity = ev.entity
    if not checked:
        title = f"Too few points to judge the {len(series)} series on {entity} (need 4 per series)"
        return finding_on(ev, "metrics_insufficient", Severity.INFO, title, "", series=len(series))
    if trending := [s for s in series if an.heading_to_limit(s, HORIZON_DAYS)]:
        names = ", ".join(series_name(s, entity) for s in trending)
        title = f"No sudden anomalies or step changes in the {checked} series on {entity}"
        detail = f"Steadily trending towards its capacity limit (see the capacity forecast): {names}."
        return finding_on(ev, "metrics_normal", Severity.INFO, title, detail, series=len(series))
    which = "The 1 series on {} is" if checked == 1 else f"All {checked} series on {{}} are"
    now = " now" if recovered else ""
    title = f"{which.format(entity)} within normal bounds{now} (no anomalies, no step changes)"
    skipped = len(series) - checked
    detail = f"{skipped} more series had too few points to judge." if skipped else ""
    if recovered:
        detail = f"{recovered} had a brief excursion that recovered (listed separately). {detail}".strip()
    return finding_on(ev, "metrics_normal", Severity.INFO, title, detail, series=len(series))


@view_tool("metrics", detects=("resource_usage", "latency"))
def metric_anomalies(ctx: ToolContext, entity: str) -> ToolResult:
    """Check every series of one entity (host, instance, service, device: any tag value equal to
    it) over the history window for a step change, an abnormal latest value or sustained high use.

    Step change: the split maximising the mean shift over the pooled spread (reported with its
    time, before/after levels and ratio). Anomaly: robust z-score (median and MAD) of the latest
    point vs earlier points, |z| >= 3.5 and >= 10% off. High: a CPU/utilisation/used percentage
    at >= 90% now. Steady climb: a line with r² >= 0.8 rising >= 50% (replication lag is named as
    such). Brief excursion: a short dip or spike beyond anything seen before that came back.
    Findings: `step_change`, `metric_anomaly`, `metric_high`, `rising_trend` (one per series,
    improvements as info), `brief_excursion` (info, recovered), `write_heavy` when writes/WAL stepped
    up >= 2x while reads held their level, `metric_breakdown` for one-point snapshot series split by a
    dimension (Performance Insights top users/hosts), or one `metrics_normal` info finding when all is well.
    """
    ev, series = read_series(ctx, "metric_anomalies", entity, log)
    if series is None:
        return ToolResult(evidence=[ev])
    limits = thresholds(ctx.options)
    judged = [_judge_series(ev, s, limits) for s in series]
    keep_rows(ev, [row for _, row, _ in judged], MAX_ROWS)
    found = [f for f, _, _ in judged if f is not None]
    problems = [f for f in found if f.kind != "brief_excursion"]
    recovered = [f for f in found if f.kind == "brief_excursion"]
    ev.summary = (
        f"{len(series)} series for {entity}: {len(problems)} with a step change, anomaly, "
        f"high level or steady climb"
    )
    if recovered:
        ev.summary += f"; {len(recovered)} with a brief excursion that recovered"
    if not series:
        ev.summary = f"No metric series tagged with {entity}"
        return ToolResult(evidence=[ev])
    checked = sum(row["status"] != "too few points" for _, row, _ in judged)
    extras = [_breakdown_finding(ev, b) for b in an.breakdowns(series)]
    if (
        shift := sg.write_shift([(s, step) for s, (_, _, step) in zip(series, judged, strict=True)])
    ) is not None:
        extras.insert(0, write_shift_finding(ev, shift, series[0]))
    findings = problems or [_all_clear(ev, series, checked, len(recovered))]
    attach_points(findings + recovered, series)
    return ToolResult(evidence=[ev], findings=findings + recovered + extras)


# --- capacity_forecast --------------------------------------------------------------------------


def _forecast_finding(ev: Evidence, s: Series, f: an.Forecast) -> Finding | None:
    name = series_name(s, ev.entity)
    now_value = fmt_value(f.latest, s.unit)
    free = not f.rising
    seconds = f.seconds_to_threshold
    if f.reached:
        kind, severity, detail = "capacity_exhausted", Severity.CRITICAL, ""
        title = f"{name} at {now_value}: " + ("out of space now" if free else f"full ({f.threshold:g}%) now")
    elif seconds is None or seconds > HORIZON_DAYS * 86400 or f.r2 < 0.5:
        return None
    else:
        assert f.eta is not None
        rate = _rate(f.slope_per_day, s.unit, seconds)
        when = f"in {_duration(seconds)}, around {f.eta:%Y-%m-%d %H:%M} UTC"
        if free:
            title = f"{name} {now_value} free, falling {rate}: out of space {when}"
        else:
            title = f"{name} {now_value} rising {rate}: full ({f.threshold:g}%) {when}"
        days = seconds / 86400
        kind = "days_until_full"
        severity = Severity.CRITICAL if days <= 2 else Severity.WARNING if days <= 14 else Severity.INFO
        detail = (
            f"Least-squares line over {len(s.points)} points from {s.points[0][0]:%Y-%m-%d %H:%M} UTC "
            f"(r² {f.r2:.2f}); projected from the latest value at the fitted slope."
        )
    finding = finding_on(ev, kind, severity, title, detail, series=s.label, **f.model_dump(mode="json"))
    target = " ".join(series_name(s, ev.entity).split()[:-1])  # entity and qualifiers, without the field
    if seconds is not None and seconds <= 7 * 86400:
        action: ActionName = "page_oncall" if seconds <= 6 * 3600 else "create_ticket"
        ref = ActionTarget(
            entity=ev.entity, kind="page" if action == "page_oncall" else "ticket", attrs={"series": s.label}
        )
        finding.remediation = ProposedAction(
            action=action, target=target, target_ref=ref, reason=title, evidence=[ev.id]
        )
    return finding


def _bounded_finding(ev: Evidence, s: Series, f: bd.BoundedForecast) -> Finding:
    name = series_name(s, ev.entity)
    rate = f"{fmt_value(f.slope_per_h, s.unit if (s.unit or '').lower() not in ('percent', '%') else None)}"
    rate += " points/hour" if (s.unit or "").lower() in ("percent", "%", "pct") else "/hour"
    hours = f.seconds / 3600
    when = f"{hours * 60:.0f} minutes" if hours < 1.5 else f"{hours:.1f} hours"
    title = (
        f"{name} at {fmt_value(f.latest, s.unit)} and climbing {rate}: reaches {f.label} in about {when} "
        f"(around {f.eta:%H:%M} UTC)"
    )
    detail = (
        f"Least-squares line over {len(s.points)} points from {s.points[0][0]:%Y-%m-%d %H:%M} UTC "
        f"(r² {f.r2:.2f}); projected from the latest value at the fitted slope."
    )
    severity = Severity.CRITICAL if hours <= 1 else Severity.WARNING
    return finding_on(
        ev, "bounded_forecast", severity, title, detail, series=s.label, **f.model_dump(mode="json")
    )


@view_tool("metrics", detects=("forecast", "space"))
def capacity_forecast(ctx: ToolContext, entity: str) -> ToolResult:
    """Forecast when the entity's storage fills up: for every disk/volume used-percent series
    (limit 100%) and free-space series such as FreeStorageSpace or free_bytes (limit 0), fit a
    least-squares line over the history window and project the latest value to the limit. Other
    bounded series (CPU, memory and pool percentages: 100%; connections: the entity's max_connections
    series) climbing in a straight line (r² >= 0.8) that reach their limit within `forecast_horizon_h`
    (48 h) get a `bounded_forecast` ("reaches 100% in about 3.5 hours (around 21:30 UTC)").

    Findings: `days_until_full` with days/hours and the ETA (critical <= 2 days, warning <= 14,
    info <= 30; a ticket is proposed within 7 days, a page within 6 hours), `capacity_exhausted`
    when the limit is already reached, or one `capacity_ok` info finding when nothing is at risk.
    """
    ev, series = read_series(ctx, "capacity_forecast", entity, log)
    if series is None:
        return ToolResult(evidence=[ev])
    rows: list[dict[str, Any]] = []
    findings: list[Finding] = []
    capacity = [(s, limit) for s in series if (limit := an.capacity_limit(s)) is not None]
    for s, (threshold, rising) in capacity:
        f = an.forecast_to_threshold(s, threshold, rising)
        row: dict[str, Any] = {"series": s.label, "unit": s.unit, "points": len(s.points), "limit": threshold}
        if f is not None:
            row |= {"latest": f.latest, "slope_per_day": f.slope_per_day, "r2": round(f.r2, 3)}
            row |= {"days_to_limit": None if f.days is None else round(f.days, 2)}
            row |= {"eta": None if f.eta is None else f.eta.isoformat()}
            if (finding := _forecast_finding(ev, s, f)) is not None:
                findings.append(finding)
        rows.append(row)
    horizon = thresholds(ctx.options).forecast_horizon_h
    for s in series:
        bound = bd.bounded_limit(s, series)
        if bound is not None and (bf := bd.forecast_bounded(s, bound, horizon)) is not None:
            findings.append(_bounded_finding(ev, s, bf))
            rows.append({"series": s.label, "unit": s.unit, "points": len(s.points), "limit": bf.limit,
                         "latest": bf.latest, "eta": bf.eta.isoformat(), "r2": round(bf.r2, 3)})  # fmt: skip
    keep_rows(ev, rows, MAX_ROWS)
    ev.summary = (
        f"{len(capacity)} storage series for {entity}: "
        f"{len(findings)} reaching the limit within {HORIZON_DAYS} days"
    )
    if capacity and not findings:
        latest = "; ".join(
            f"{series_name(s, entity)} at {fmt_value(s.points[-1][1], s.unit)}"
            for s, _ in capacity
            if s.points
        )
        title = (
            f"No active capacity risk on {entity}: "
            f"no storage series reaches its limit within {HORIZON_DAYS} days"
        )
        findings.append(finding_on(ev, "capacity_ok", Severity.INFO, title, f"Latest: {latest}."))
    attach_points(findings, [s for s, _ in capacity])
    return ToolResult(evidence=[ev], findings=findings)


# --- peer_comparison ----------------------------------------------------------------------------


@view_tool("metrics", detects=("resource_usage",))
def peer_comparison(ctx: ToolContext, entity: str) -> ToolResult:
    """Compare the entity's latest values with its peers: every other series of the same
    measurement and field (other hosts, instances, services) in the history window.

    A series is an outlier when its latest value has a robust z >= 3.5 against the median of the
    peers' latest values and differs from it by >= 50%. Needs 3 series per measurement+field.
    Findings: `peer_outlier` per outlier of this entity, or a `peers_normal` info finding.
    """
    ev, own = read_series(ctx, "peer_comparison", entity, log)
    if own is None or ctx.sources.metrics is None:
        return ToolResult(evidence=[ev])
    try:
        pool: list[Series] = []
        for measurement in sorted({s.measurement for s in own}):
            fields = {s.field for s in own if s.measurement == measurement}
            found = ctx.sources.metrics.series(
                match=None, start=ctx.history_start, end=ctx.end, measurement=measurement
            )
            pool += [s for s in found if s.field in fields]
    except Exception as exc:  # any backend failure is evidence, never a crash
        record_failure(ev, exc, f"Could not read peer series for {entity}")
        return ToolResult(evidence=[ev])
    mine = {s.label for s in own}
    peer_groups = [an.peer_key(s) for s in pool if s.label not in mine]
    compared = [s for s in own if peer_groups.count(an.peer_key(s)) >= 2]
    outliers = [o for o in an.compare_peers(pool) if o.label in mine]
    keep_rows(ev, [o.model_dump(mode="json") for o in outliers], MAX_ROWS)
    ev.summary = f"{len(compared)} series of {entity} compared with peers: {len(outliers)} outliers"
    findings = []
    for o in outliers:
        unit = next((s.unit for s in own if s.label == o.label), None)
        ratio = f" ({o.ratio:.1f}x)" if o.ratio else ""
        title = (
            f"{entity} {o.field} at {fmt_value(o.value, unit)} vs peer median "
            f"{fmt_value(o.peer_median, unit)}{ratio} across {o.peers} peers ({o.measurement})"
        )
        findings.append(
            finding_on(ev, "peer_outlier", Severity.WARNING, title, "", **o.model_dump(mode="json"))
        )
    if compared and not outliers:
        title = f"{entity} in line with its peers on {len(compared)} series (no outliers)"
        findings.append(finding_on(ev, "peers_normal", Severity.INFO, title, ""))
    return ToolResult(evidence=[ev], findings=findings)


METRICS_TOOLS: list[ViewTool] = [metric_anomalies, capacity_forecast, peer_comparison, workload_attribution]
