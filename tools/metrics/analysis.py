"""Time-series analyzers: robust baseline vs now, step changes, capacity forecasts and peer outliers."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel

from tools.inventory import ENTITY_TAGS
from tools.world import Series

MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation (normal data)
MEAN_AD_SCALE = 1.2533  # sqrt(pi/2): the same for the mean absolute deviation, used when the MAD is 0
Z_THRESHOLD = 3.5  # Iglewicz & Hoaglin's cut-off for the modified z-score
MIN_RELATIVE_CHANGE = 0.10  # and the latest value must differ from the median by at least 10%
HORIZON_DAYS = 30  # capacity forecasts further out than this are not findings


def robust_z(value: float, sample: Sequence[float]) -> tuple[float, float, float | None]:
    """(median, MAD, z) of `value` against `sample`. z is None when the sample is perfectly flat
    (MAD and mean absolute deviation both 0) and `value` differs from it: infinitely far."""
    med = float(statistics.median(sample))
    deviations = [abs(x - med) for x in sample]
    mad = float(statistics.median(deviations))
    scale = MAD_SCALE * mad or MEAN_AD_SCALE * statistics.fmean(deviations)
    if scale == 0:
        return med, mad, 0.0 if value == med else None
    return med, mad, (value - med) / scale


def _material(value: float, reference: float, relative: float) -> bool:
    return abs(value - reference) >= relative * abs(reference) if reference else value != reference


class BaselineCheck(BaseModel):
    """The latest point against the robust baseline of the points before it."""

    latest: float
    latest_ts: datetime
    median: float
    mad: float
    z: float | None  # None: the baseline is perfectly flat and the latest value is off it
    baseline_points: int
    anomalous: bool


def baseline_vs_now(series: Series, z_threshold: float = Z_THRESHOLD) -> BaselineCheck | None:
    """Robust z-score of the latest value vs all earlier points: (x - median) / (1.4826 * MAD).

    Needs 3 earlier points. Anomalous when |z| >= `z_threshold` and the value is at least 10%
    away from the median (tiny moves on a very steady series are not news).
    """
    if len(series.points) < 4:
        return None
    *earlier, (ts, latest) = series.points
    med, mad, z = robust_z(latest, [v for _, v in earlier])
    far = z is None or abs(z) >= z_threshold
    return BaselineCheck(
        latest=latest,
        latest_ts=ts,
        median=med,
        mad=mad,
        z=z,
        baseline_points=len(earlier),
        anomalous=far and _material(latest, med, MIN_RELATIVE_CHANGE),
    )


class StepChange(BaseModel):
    """A level shift: the series runs at one level before `at` and at another from `at` on."""

    at: datetime  # timestamp of the first point at the new level
    index: int
    before: float  # mean before
    after: float  # mean from `at` on
    ratio: float | None  # after / before (None when before is 0)
    effect: float | None  # |after - before| / pooled standard deviation; None = no spread at all
    points_before: int
    points_after: int
    back_at: datetime | None = None  # the series came back to the old level here (an excursion)
    back_level: float | None = None  # mean from back_at on


def _back_to_before(values: Sequence[float], k: int, before: float, min_after: int) -> int | None:
    """The first index j after the new level where every later point is nearer the old level than the
    new one: the shift was an excursion that ended (latency 40x from 14:10, normal again at 15:00)."""
    total = sum(values[k : k + min_after])
    for j in range(k + min_after, len(values)):
        level = total / (j - k)  # mean of values[k:j]
        if all(abs(v - before) < abs(v - level) for v in values[j:]):
            return j
        total += values[j]
    return None


def _pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    ss = sum((x - statistics.fmean(a)) ** 2 for x in a) + sum((x - statistics.fmean(b)) ** 2 for x in b)
    return math.sqrt(ss / (len(a) + len(b) - 2))


def step_change(
    series: Series,
    min_effect: float = 4.0,
    min_relative: float = 0.25,
    min_before: int = 1,
    min_after: int = 2,
) -> StepChange | None:
    """The split that maximises |mean_after - mean_before| / pooled standard deviation.

    Reported only when significant: effect >= `min_effect` (a straight ramp never exceeds ~3.5,
    so trends are left to the forecast) and the level moved by >= `min_relative` of the before
    level. One point before the change is enough (the window may start just before it) if the
    level moved by 50% or more; the new level needs `min_after` points, else it is the latest
    value's anomaly, not a step.
    """
    values = [v for _, v in series.points]
    best: tuple[float, int] | None = None
    if len(values) < 4:
        return None
    for k in range(min_before, len(values) - min_after + 1):
        before, after = values[:k], values[k:]
        diff = abs(statistics.fmean(after) - statistics.fmean(before))
        if diff == 0:
            continue
        sd = _pooled_sd(before, after)
        score = diff / sd if sd else math.inf
        if best is None or score > best[0]:
            best = (score, k)
    if best is None:
        return None
    score, k = best
    mean_before, mean_after = statistics.fmean(values[:k]), statistics.fmean(values[k:])
    # a lone point before the split may just be an outlier: then the move must be at least 50%
    relative = max(min_relative, 0.5) if k == 1 else min_relative
    if score < min_effect or not _material(mean_after, mean_before, relative):
        return None
    end = _back_to_before(values, k, mean_before, min_after)
    if end is not None:
        mean_after = statistics.fmean(values[k:end])
    return StepChange(
        at=series.points[k][0],
        index=k,
        before=mean_before,
        after=mean_after,
        ratio=mean_after / mean_before if mean_before else None,
        effect=None if math.isinf(score) else score,
        points_before=k,
        points_after=(end or len(values)) - k,
        back_at=series.points[end][0] if end is not None else None,
        back_level=statistics.fmean(values[end:]) if end is not None else None,
    )


class Forecast(BaseModel):
    """Where a least-squares line over the series takes the latest value, and when it hits a limit."""

    latest: float
    latest_ts: datetime
    threshold: float
    rising: bool  # True: the limit is above (used %), False: below (free bytes)
    slope_per_day: float
    r2: float
    reached: bool  # the latest value is already at or past the limit
    seconds_to_threshold: float | None  # None: the trend does not head towards the limit
    eta: datetime | None

    @property
    def days(self) -> float | None:
        return None if self.seconds_to_threshold is None else self.seconds_to_threshold / 86400

    @property
    def hours(self) -> float | None:
        return None if self.seconds_to_threshold is None else self.seconds_to_threshold / 3600


def linear_fit(series: Series) -> tuple[float, float, float]:
    """(slope per second, intercept at the first point, r²) of an ordinary least-squares line."""
    t0 = series.points[0][0]
    xs = [(t - t0).total_seconds() for t, _ in series.points]
    ys = [v for _, v in series.points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy else 1.0
    return slope, my - slope * mx, r2


def forecast_to_threshold(series: Series, threshold: float, rising: bool | None = None) -> Forecast | None:
    """Time until the latest value, moving at the fitted slope, reaches `threshold`.

    `rising` says which side the limit is on (default: above when the latest value is below
    it). Needs 3 points spread over time; ETA = latest timestamp + (threshold - latest) / slope.
    """
    if len(series.points) < 3 or series.points[-1][0] == series.points[0][0]:
        return None
    slope, _, r2 = linear_fit(series)
    ts, latest = series.points[-1]
    up = threshold >= latest if rising is None else rising
    reached = latest >= threshold if up else latest <= threshold
    seconds: float | None = None
    if reached:
        seconds = 0.0
    elif slope != 0 and (slope > 0) == up:
        seconds = (threshold - latest) / slope
    return Forecast(
        latest=latest,
        latest_ts=ts,
        threshold=threshold,
        rising=up,
        slope_per_day=slope * 86400,
        r2=r2,
        reached=reached,
        seconds_to_threshold=seconds,
        eta=None if seconds is None else ts + timedelta(seconds=seconds),
    )


_STORAGE = re.compile(r"disk|storage|volume|filesystem|\bfs\b|tablespace|datafile|mount", re.IGNORECASE)
_STORAGE_TAGS = {"path", "mountpoint", "mount", "volume", "fstype", "drive", "filesystem"}
_USED = re.compile(r"used|usage|util", re.IGNORECASE)
_PERCENT = re.compile(r"percent|pct|%", re.IGNORECASE)
_FREE = re.compile(r"free|avail", re.IGNORECASE)


def metric_field(series: Series) -> str:
    """What the series measures: its field, or for Prometheus (field `value`) the metric name."""
    return series.measurement if series.field == "value" else series.field


def capacity_limit(series: Series) -> tuple[float, bool] | None:
    """(threshold, rising) for a storage-capacity series, None for anything else.

    Used-percent storage series (disk used_percent) fill up towards 100; free-space series
    (FreeStorageSpace, free_bytes) drain towards 0. CPU or memory percentages are not capacity.
    """
    field = metric_field(series)
    name = f"{series.measurement} {field}"
    storage = bool(_STORAGE.search(name)) or bool(_STORAGE_TAGS & set(series.tags))
    if not storage:
        return None
    if _FREE.search(field):
        return 0.0, False
    percent = bool(_PERCENT.search(f"{field} {series.unit or ''}"))
    if _USED.search(field) and percent:
        return 100.0, True
    return None


_UTILISATION = re.compile(r"cpu|util|usage|used|busy", re.IGNORECASE)


def is_utilisation(series: Series) -> bool:
    """A percent-of-capacity series (CPU, utilisation, used %) where high means busy or full."""
    percent = bool(_PERCENT.search(f"{series.field} {series.unit or ''}"))
    name = f"{series.measurement} {series.field}"
    return percent and bool(_UTILISATION.search(name)) and not _FREE.search(series.field)


class HighLevel(BaseModel):
    """A utilisation series that is high now and has stayed high."""

    latest: float
    since: datetime  # first point of the trailing run at or above `floor`
    points: int  # length of that run
    floor: float


def sustained_high(series: Series, threshold: float = 90.0, floor: float = 85.0) -> HighLevel | None:
    """The latest value is >= `threshold`; report how long the series has stayed >= `floor`."""
    if not series.points or series.points[-1][1] < threshold:
        return None
    run = 0
    for _, v in reversed(series.points):
        if v < floor:
            break
        run += 1
    return HighLevel(latest=series.points[-1][1], since=series.points[-run][0], points=run, floor=floor)


class Breakdown(BaseModel):
    """Snapshot series (one point each) splitting one measurement by a dimension, largest first."""

    measurement: str
    field: str
    unit: str | None
    by: str
    items: list[tuple[str, float]]


def breakdowns(series_list: Sequence[Series], entity_tags: Collection[str] = ENTITY_TAGS) -> list[Breakdown]:
    """Group one-point series (Performance Insights top users/hosts and the like) by measurement,
    field and the `dimension` tag (else the set of non-entity tag keys); 2 members at least."""
    groups: dict[tuple[str, ...], list[Series]] = {}
    for s in series_list:
        if len(s.points) == 1:
            keys = sorted(k for k in s.tags if k not in entity_tags and k != "dimension")
            by = s.tags.get("dimension") or ",".join(keys)
            groups.setdefault((s.measurement, s.field, by), []).append(s)
    out = []
    for (measurement, field, by), members in groups.items():
        if len(members) < 2:
            continue
        varying = sorted({k for m in members for k, v in m.tags.items() if v != members[0].tags.get(k)})
        items = [(" ".join(m.tags.get(k, "") for k in varying), m.points[0][1]) for m in members]
        items.sort(key=lambda item: -item[1])
        out.append(Breakdown(measurement=measurement, field=field, unit=members[0].unit, by=by, items=items))
    return out


def heading_to_limit(series: Series, horizon_days: float) -> bool:
    """A capacity series already at its limit, or trending (r² >= 0.5) to it within the horizon."""
    limit = capacity_limit(series)
    f = None if limit is None else forecast_to_threshold(series, *limit)
    if f is None or f.seconds_to_threshold is None:
        return False
    return f.reached or (f.seconds_to_threshold <= horizon_days * 86400 and f.r2 >= 0.5)


_GOOD_WHEN_HIGH = re.compile(r"free|avail|idle|hit_?ratio", re.IGNORECASE)
_BAD_WHEN_HIGH = re.compile(
    r"latency|lag|error|fail|cpu|util|load|queue|wait|deadlock|timeout|swap|usage|used|percent|duration",
    re.IGNORECASE,
)


def higher_is_worse(series: Series) -> bool | None:
    """True for latency, lag, errors, CPU, used %; False for free/available space; None when a
    move either way can be bad (throughput, IOPS, connections)."""
    name = f"{series.measurement} {series.field}"
    if _GOOD_WHEN_HIGH.search(name):
        return False
    return True if _BAD_WHEN_HIGH.search(name) else None


class PeerOutlier(BaseModel):
    """A series whose latest value sits far from the median of its peers (same measurement and field)."""

    label: str
    tags: dict[str, str]
    measurement: str
    field: str
    value: float
    peer_median: float
    z: float | None
    ratio: float | None
    peers: int


def peer_key(series: Series, entity_tags: Collection[str] = ENTITY_TAGS) -> tuple[str, ...]:
    """Measurement, field and every tag that does not name an entity: series sharing it are peers
    (the same disk path or CloudWatch statistic on different hosts), whatever host they are on."""
    quals = [f"{k}={v}" for k, v in sorted(series.tags.items()) if k not in entity_tags]
    return (series.measurement, series.field, *quals)


def compare_peers(
    series_list: Sequence[Series], z_threshold: float = Z_THRESHOLD, min_relative: float = 0.5
) -> list[PeerOutlier]:
    """Series whose latest value is a robust outlier against its peers (same `peer_key`).

    Groups need 3 series with points. Each series is scored against the median and MAD of the
    *other* series' latest values; it must also differ from that median by `min_relative`.
    """
    groups: dict[tuple[str, ...], list[Series]] = {}
    for s in series_list:
        if s.points:
            groups.setdefault(peer_key(s), []).append(s)
    out = []
    for members in groups.values():
        if len(members) < 3:
            continue
        latest = [s.points[-1][1] for s in members]
        for i, s in enumerate(members):
            others = latest[:i] + latest[i + 1 :]
            med, _, z = robust_z(latest[i], others)
            if (z is None or abs(z) >= z_threshold) and _material(latest[i], med, min_relative):
                out.append(
                    PeerOutlier(
                        label=s.label,
                        tags=s.tags,
                        measurement=s.measurement,
                        field=s.field,
                        value=latest[i],
                        peer_median=med,
                        z=z,
                        ratio=latest[i] / med if med else None,
                        peers=len(others),
                    )
                )
    return out
