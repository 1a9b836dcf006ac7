"""The points a metric finding was judged on, kept with the finding (bounded) so that it can be drawn."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from tools.base import Finding
from tools.world import Series

MAX_POINTS = 240  # per finding; a longer series keeps each bucket's lowest and highest point


Point = tuple[datetime, float]


def chart_points(points: Sequence[Point], limit: int = MAX_POINTS) -> list[list[str | float]]:
    """`[[iso timestamp, value], ...]` in time order. Longer series are cut into limit/2 buckets of
    which the lowest and the highest point are kept, so spikes and dips survive the thinning."""
    if len(points) <= limit:
        kept = list(points)
    else:
        buckets = max(1, limit // 2)
        size = len(points) / buckets
        kept = []
        for b in range(buckets):
            chunk = points[int(b * size) : int((b + 1) * size)]
            if not chunk:
                continue
            low = min(chunk, key=lambda p: p[1])
            high = max(chunk, key=lambda p: p[1])
            kept.extend(sorted({low, high}, key=lambda p: p[0]))
        if kept[-1] != points[-1]:
            kept.append(points[-1])  # the latest value is what the finding talks about
    return [[ts.isoformat().replace("+00:00", "Z"), round(v, 6)] for ts, v in kept]


def attach_points(findings: Sequence[Finding], series: Sequence[Series]) -> None:
    """Give each finding about one series (`data["series"]` is its label) that series' points."""
    by_label = {s.label: s for s in series}
    for f in findings:
        s = by_label.get(str(f.data.get("series", "")))
        if s is not None and s.points:
            f.data["points"] = chart_points(s.points)
            f.data.setdefault("unit", s.unit)
