"""Findings for the shapes in tools.metrics.signals: steady climbs, brief excursions, write-heavy shifts."""

from __future__ import annotations

from tools.base import Evidence, Finding, Severity
from tools.common import finding_on
from tools.metrics import analysis as an
from tools.metrics import signals as sg
from tools.metrics.wording import _rate, _when, fmt_value, series_name
from tools.world import Series


def _span(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h" if minutes < 48 * 60 else f"{minutes / 1440:.1f} days"


def trend_finding(ev: Evidence, s: Series, t: sg.Trend) -> Finding:
    """`rising_trend`: a warning when higher is worse (lag, latency, errors), else info."""
    window_s = (t.latest_ts - t.first_ts).total_seconds()
    rate = _rate(t.slope_per_s * 86400, s.unit, window_s)
    since = _when(t.first_ts, t.latest_ts)
    first, latest = fmt_value(t.first, s.unit), fmt_value(t.latest, s.unit)
    if sg.is_replication_lag(s):
        title = f"Replication lag on {ev.entity} reached {latest} (rising {rate} since {since}; {s.field})"
    else:
        title = f"{series_name(s, ev.entity)} rising steadily: {first} → {latest} since {since} (+{rate})"
    detail = (
        f"A straight line explains the climb (r² {t.r2:.2f} over {t.points} points, {_span(t.minutes)}): "
        f"each point is close to the one before, so no single step or outlier stands out; "
        f"from {first} to {latest}."
    )
    worse = an.higher_is_worse(s)
    severity = Severity.WARNING if worse else Severity.INFO
    return finding_on(
        ev, "rising_trend", severity, title, detail, series=s.label, **t.model_dump(mode="json")
    )


def excursion_finding(ev: Evidence, s: Series, e: sg.Excursion) -> Finding:
    """`brief_excursion`: info, since the series is back at its level (the event itself is history)."""
    ref = s.points[-1][0]
    moved = "dropped to" if e.direction == "dip" else "spiked to"
    span = (
        f"at {_when(e.start, ref)}" if e.points == 1 else f"from {_when(e.start, ref)} to {_when(e.end, ref)}"
    )
    base = fmt_value(e.baseline, s.unit)
    title = (
        f"{series_name(s, ev.entity)} {moved} {fmt_value(e.extreme, s.unit)} {span} (baseline {base}) "
        f"and recovered by {_when(e.recovered_at, ref)}"
    )
    detail = (
        f"{e.points} point{'s' if e.points > 1 else ''} far off the median of the points before; "
        f"every point since {_when(e.recovered_at, ref)} is back near {base} "
        f"(latest {fmt_value(e.latest, s.unit)})."
    )
    return finding_on(
        ev, "brief_excursion", Severity.INFO, title, detail, series=s.label, **e.model_dump(mode="json")
    )


def write_shift_finding(ev: Evidence, w: sg.WriteShift, ref: Series) -> Finding:
    """`write_shift`: the workload turned write-heavy (an info summary of the write steps)."""
    ups = ", ".join(f"{field} {ratio:.1f}x" for field, ratio, _ in w.writes)
    flat = ", ".join(f"{field} {ratio:.1f}x" for field, ratio in w.reads)
    wal = [field for field, _, side in w.writes if side == "wal"]
    also = f"; {', '.join(wal)} is WAL / transaction log generated" if wal else ""
    title = (
        f"Write-heavy workload on {ev.entity} since {_when(w.since, ref.points[-1][0])}: "
        f"writes stepped up ({ups}) while reads held their level ({flat})"
    )
    detail = (
        f"Ratios are the level after the step over the level before{also}. More write volume with reads "
        "unchanged means the extra load is writes (inserts, updates, bulk loads), not more queries."
    )
    return finding_on(ev, "write_heavy", Severity.INFO, title, detail, **w.model_dump(mode="json"))
