"""Bounded series that are not storage: CPU, memory, pool usage (100%) and connections against their
maximum. When they head for their limit, and when they sit above an absolute threshold with no
baseline to compare with (error rates, pools)."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel

from tools.metrics.analysis import capacity_limit, linear_fit, metric_field
from tools.world import Series

_PERCENT = re.compile(r"percent|pct|%|ratio", re.IGNORECASE)
_BUSY = re.compile(r"cpu|util|usage|used|busy|pool|memory|mem\b|heap", re.IGNORECASE)
_NOT_BUSY = re.compile(r"free|avail|idle|error|fail|hit|miss", re.IGNORECASE)
_CONNECTIONS = re.compile(
    r"connections|numbackends|threads_connected|sessions|clients|active_conn", re.IGNORECASE
)
_MAXIMUM = re.compile(r"max_?conn|connection_?limit|max_?sessions|max_?clients|max_?threads", re.IGNORECASE)
_ERROR_RATE = re.compile(r"error|5xx|fail", re.IGNORECASE)
_POOL = re.compile(r"pool", re.IGNORECASE)


class Limit(BaseModel):
    value: float
    label: str  # "100%", "max_connections (500)"


def bounded_limit(s: Series, same_entity: Sequence[Series]) -> Limit | None:
    """The limit a non-storage series runs into: 100 for a busy/used percentage, the latest value of a
    maximum series of the same entity for a connection count. None for storage (the capacity forecast's)
    and for anything else."""
    if capacity_limit(s) is not None:
        return None
    name = f"{s.measurement} {metric_field(s)}"
    if _PERCENT.search(f"{s.field} {s.unit or ''}") and _BUSY.search(name) and not _NOT_BUSY.search(s.field):
        return Limit(value=100.0, label="100%")
    if _CONNECTIONS.search(s.field) and not _MAXIMUM.search(s.field):
        for m in same_entity:
            if m is not s and m.points and _MAXIMUM.search(m.field):
                top = m.points[-1][1]
                return Limit(value=top, label=f"{m.field} ({top:,.0f})")
    return None


class BoundedForecast(BaseModel):
    latest: float
    latest_ts: datetime
    limit: float
    label: str
    slope_per_h: float
    r2: float
    seconds: float
    eta: datetime


def forecast_bounded(
    s: Series, limit: Limit, horizon_h: float, min_r2: float = 0.8
) -> BoundedForecast | None:
    """A straight climb (r² >= `min_r2`, >= 6 points, latest within 2% of the peak) that reaches the limit
    within `horizon_h` hours, projected from the latest value at the fitted slope."""
    pts = s.points
    if len(pts) < 6 or pts[-1][0] == pts[0][0]:
        return None
    slope, _, r2 = linear_fit(s)
    ts, latest = pts[-1]
    peak = max(v for _, v in pts)
    if slope <= 0 or r2 < min_r2 or latest < 0.98 * peak or latest >= limit.value:
        return None
    seconds = (limit.value - latest) / slope
    if seconds > horizon_h * 3600:
        return None
    return BoundedForecast(
        latest=latest,
        latest_ts=ts,
        limit=limit.value,
        label=limit.label,
        slope_per_h=slope * 3600,
        r2=r2,
        seconds=seconds,
        eta=ts + timedelta(seconds=seconds),
    )


class AbsoluteBreach(BaseModel):
    what: str  # "error rate" | "pool"
    level: float  # median over the window
    latest: float
    threshold: float
    critical: bool
    points: int


def absolute_breach(
    s: Series, error_warning: float, error_critical: float, pool_ratio: float
) -> AbsoluteBreach | None:
    """Bad in absolute terms whatever the baseline: an error-rate percentage whose median over the window is
    at or above `error_warning` (critical at `error_critical`), or a pool usage percentage at or above
    `pool_ratio` of its size."""
    if len(s.points) < 3:
        return None
    values = [v for _, v in s.points]
    level = statistics.median(values[-max(3, len(values) // 2) :])
    percent = bool(_PERCENT.search(f"{s.field} {s.unit or ''}"))
    name = f"{s.measurement} {metric_field(s)}"
    if percent and _ERROR_RATE.search(metric_field(s)):
        if level >= error_warning:
            return AbsoluteBreach(
                what="error rate",
                level=level,
                latest=values[-1],
                threshold=error_warning,
                critical=level >= error_critical,
                points=len(values),
            )
    elif percent and _POOL.search(name) and level >= pool_ratio * 100:
        return AbsoluteBreach(
            what="pool",
            level=level,
            latest=values[-1],
            threshold=pool_ratio * 100,
            critical=values[-1] >= 100,
            points=len(values),
        )
    return None
