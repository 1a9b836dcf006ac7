"""Shapes a step change or a latest-point check misses, and what kind of I/O a series measures.

- `rising_trend`: a steady climb (replication lag growing every minute, connections piling up) whose
  latest point is never far from the one before, so neither a step nor a baseline outlier shows it.
- `brief_excursion`: a short dip or spike that came back (connections at 0 for two minutes during a
  failover): the latest value looks normal again, but something happened.
- `resumed_after`: whether a series is back at the level it had before a known event.
- `io_side` / `write_shift`: writes stepped up while reads stayed flat, i.e. a write-heavy change.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel

from tools.metrics.analysis import StepChange, capacity_limit, linear_fit
from tools.world import Series

# --- steady climbs ------------------------------------------------------------------------------


class Trend(BaseModel):
    """A least-squares line that explains most of the series and climbs materially."""

    first: float  # the first point's value
    first_ts: datetime
    latest: float
    latest_ts: datetime
    slope_per_s: float
    r2: float
    points: int

    @property
    def per_minute(self) -> float:
        return self.slope_per_s * 60

    @property
    def minutes(self) -> float:
        return (self.latest_ts - self.first_ts).total_seconds() / 60


def rising_trend(
    series: Series, min_points: int = 5, min_r2: float = 0.8, min_rise: float = 0.5
) -> Trend | None:
    """A steady climb: a line with r² >= `min_r2` and a positive slope over >= `min_points` points,
    with the latest value >= (1 + `min_rise`) x the first (any rise from 0) and the latest point the
    highest or within 10% of it (still climbing, not already back down)."""
    pts = series.points
    if len(pts) < min_points or pts[-1][0] == pts[0][0]:
        return None
    slope, _, r2 = linear_fit(series)
    first, latest = pts[0][1], pts[-1][1]
    peak = max(v for _, v in pts)
    if slope <= 0 or r2 < min_r2 or latest < 0.9 * peak:
        return None
    if not (latest > first if first == 0 else latest - first >= min_rise * abs(first)):
        return None
    return Trend(
        first=first,
        first_ts=pts[0][0],
        latest=latest,
        latest_ts=pts[-1][0],
        slope_per_s=slope,
        r2=r2,
        points=len(pts),
    )


def climbing(series: Series, min_rise: float = 0.05, min_up_share: float = 0.8) -> Trend | None:
    """A series that kept going up, line or curve (connections piling up towards a limit and slowing
    as they near it): >= `min_up_share` of the moves between consecutive points are up (none down
    by more than the total rise), and the latest value is >= (1 + `min_rise`) x the first."""
    pts = series.points
    if len(pts) < 5 or pts[-1][0] == pts[0][0]:
        return None
    first, latest = pts[0][1], pts[-1][1]
    moves = [b - a for (_, a), (_, b) in pairwise(pts)]
    rise = latest - first
    if rise <= 0 or (first and rise < min_rise * abs(first)):
        return None
    if sum(m > 0 for m in moves) < min_up_share * len(moves) or min(moves) < -rise:
        return None
    slope, _, r2 = linear_fit(series)
    return Trend(first=first, first_ts=pts[0][0], latest=latest, latest_ts=pts[-1][0], slope_per_s=slope,
                 r2=r2, points=len(pts))  # fmt: skip


_LAG = re.compile(r"lag|delay|behind", re.IGNORECASE)
_REPLICATION = re.compile(r"replica|replication|slave|standby|secondary|wal_?receiver", re.IGNORECASE)


def is_replication_lag(series: Series) -> bool:
    """ReplicaLag, pg_replication_lag, mysql seconds_behind_master: how far a replica trails its source."""
    name = f"{series.measurement} {series.field}"
    return bool(_LAG.search(name)) and bool(_REPLICATION.search(name))


# --- brief excursions ---------------------------------------------------------------------------


class Excursion(BaseModel):
    """A short run of points far from the level before it, followed by a return to that level."""

    direction: Literal["dip", "spike"]
    start: datetime  # first point of the excursion
    end: datetime  # last point of the excursion
    extreme: float  # the value farthest from the baseline
    baseline: float  # median of the points before
    recovered_at: datetime  # first point back at the baseline
    latest: float
    points: int


def _scale(sample: Sequence[float]) -> float:
    """1.4826 x MAD, else 1.2533 x mean absolute deviation (as robust_z), else 1% of the level."""
    med = statistics.median(sample)
    dev = [abs(x - med) for x in sample]
    return 1.4826 * statistics.median(dev) or 1.2533 * statistics.fmean(dev) or 0.01 * abs(med) or 1e-12


def brief_excursion(
    series: Series, z: float = 5.0, relative: float = 0.5, min_before: int = 3, min_after: int = 2
) -> Excursion | None:
    """The first short dip or spike that came back.

    With the points before as the baseline (median m, robust scale s, at least `min_before` of them),
    an excursion is a run of points on one side of m with |x - m| >= z*s, >= `relative` x |m|, and
    >= 1.5x the largest deviation seen before (so the peaks of a steady oscillation do not count).
    It lasts at most a quarter of the points, and every point after it (at least `min_after`) is back
    within max(3.5*s, 20% of |m|) of m. Capacity series (free space, disk used) are left to the
    forecast: a volume that was grown does not come "back".
    """
    values = [v for _, v in series.points]
    n = len(values)
    if n < min_before + 1 + min_after or capacity_limit(series) is not None:
        return None
    longest = max(1, n // 4)
    for i in range(min_before, n - min_after):
        before = values[:i]
        base, scale = statistics.median(before), _scale(before)
        widest = max(abs(x - base) for x in before)

        def far(x: float, base: float = base, scale: float = scale, widest: float = widest) -> bool:
            d = abs(x - base)
            material = d >= relative * abs(base) if base else d > 0
            return d >= z * scale and material and d >= 1.5 * widest

        if not far(values[i]):
            continue
        up = values[i] > base
        j = i
        while j + 1 < n and far(values[j + 1]) and (values[j + 1] > base) == up:
            j += 1
        after = values[j + 1 :]
        band = max(3.5 * scale, 0.2 * abs(base))
        if j - i + 1 > longest or len(after) < min_after or any(abs(x - base) > band for x in after):
            continue
        run = values[i : j + 1]
        return Excursion(
            direction="spike" if up else "dip",
            start=series.points[i][0],
            end=series.points[j][0],
            extreme=max(run) if up else min(run),
            baseline=base,
            recovered_at=series.points[j + 1][0],
            latest=values[-1],
            points=j - i + 1,
        )
    return None


class Resumption(BaseModel):
    """A series against its own level before an event: back at it afterwards, and since when."""

    before: float  # median of the points before the event
    after: float  # median of the points from `since` on (or of all points after the event)
    resumed: bool
    since: datetime | None  # first point after the event from which every point is back at the level
    points_after: int


def resumed_after(
    series: Series,
    event_start: datetime,
    event_end: datetime,
    worse_when_higher: bool | None = None,
    tolerance: float = 0.2,
    min_points: int = 2,
) -> Resumption | None:
    """Is the series back at its pre-event level? Baseline: median and robust scale of the points
    before `event_start` (3 at least). Back: within max(`tolerance` x |median|, 3.5 x scale) of it, or
    up to 50% better when the good direction is known (`worse_when_higher`: lower latency is back too,
    CPU at nothing is not).
    Resumed when every point from some time after `event_end` on is back, for `min_points` points."""
    before = [v for t, v in series.points if t < event_start]
    after = [(t, v) for t, v in series.points if t >= event_end]
    if len(before) < 3 or len(after) < min_points:
        return None
    base = statistics.median(before)
    band = max(tolerance * abs(base), 3.5 * _scale(before))

    def back(v: float) -> bool:
        if abs(v - base) <= band:
            return True
        better = worse_when_higher is not None and (v < base) == worse_when_higher
        return better and abs(v - base) <= 0.5 * abs(base)  # better, but not a collapse to nothing

    since: datetime | None = None
    for k in range(len(after)):
        if all(back(v) for _, v in after[k:]):
            since = after[k][0]
            break
    tail = [v for t, v in after if since is None or t >= since]
    resumed = since is not None and len(tail) >= min_points
    return Resumption(
        before=base,
        after=statistics.median(tail),
        resumed=resumed,
        since=since if resumed else None,
        points_after=len(after),
    )


# --- reads versus writes ------------------------------------------------------------------------

_NOT_VOLUME = re.compile(r"latency|lat\b|wait|queue|error|fail|time|await|util", re.IGNORECASE)
_WAL = re.compile(r"transactionlogs|(?<![a-z])wal(?![a-z])|wal_|redo|binlog_?bytes", re.IGNORECASE)
_VOLUME = re.compile(r"iops|ops|throughput|bytes|rate|count|per_?sec|/s", re.IGNORECASE)


def io_side(series: Series) -> Literal["read", "write", "wal"] | None:
    """Whether a series counts I/O volume written, WAL/redo generated, or read (IOPS, bytes/s); None for
    latencies, queues, errors and everything else."""
    name = f"{series.field} {series.unit or ''}"
    if _NOT_VOLUME.search(series.field):
        return None
    if _WAL.search(series.field):
        return "wal"
    if not _VOLUME.search(name):
        return None
    if re.search(r"writ", series.field, re.IGNORECASE):
        return "write"
    return "read" if re.search(r"read", series.field, re.IGNORECASE) else None


class WriteShift(BaseModel):
    """Write volume (and WAL generation) stepped up while read volume stayed at its level."""

    writes: list[tuple[str, float, str]]  # field, after/before ratio of its step, "write" or "wal"
    reads: list[tuple[str, float]]  # field, after/before ratio of its means around `since`
    since: datetime  # the earliest write step


def _ratio_around(series: Series, at: datetime) -> float | None:
    before = [v for t, v in series.points if t < at]
    after = [v for t, v in series.points if t >= at]
    if not before or not after or statistics.fmean(before) <= 0:
        return None
    return statistics.fmean(after) / statistics.fmean(before)


def write_shift(
    judged: Sequence[tuple[Series, StepChange | None]], min_ratio: float = 2.0, flat_ratio: float = 1.5
) -> WriteShift | None:
    """Write/WAL series that stepped up by >= `min_ratio` while every read series (one at least) kept
    its level: the mean after the earliest write step within `flat_ratio` of the mean before it."""
    writes = [
        (s, step)
        for s, step in judged
        if io_side(s) in ("write", "wal") and step is not None and (step.ratio or 0.0) >= min_ratio
    ]
    if not writes:
        return None
    since = min(step.at for _, step in writes)
    reads = [(s.field, _ratio_around(s, since)) for s, _ in judged if io_side(s) == "read"]
    known = [(field, r) for field, r in reads if r is not None]
    if not known or len(known) < len(reads) or any(not 1 / flat_ratio < r < flat_ratio for _, r in known):
        return None
    return WriteShift(
        writes=[(s.field, step.ratio or 0.0, io_side(s) or "write") for s, step in writes],
        reads=known,
        since=since,
    )


def load_series(series: Sequence[Series]) -> Series | None:
    """The Performance Insights-style db load series (average active sessions) among `series`."""
    for s in series:
        if len(s.points) > 1 and (s.tags.get("dimension") == "db.load" or s.field.lower() == "db_load"):
            return s
    return None
