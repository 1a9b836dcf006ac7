"""Phrasing for the metrics findings: values in the unit people read, rates, durations, series names."""

from __future__ import annotations

from datetime import datetime

from tools.world import Series

NOISE_TAGS = {"namespace", "stat", "statistic", "region", "unit", "job", "dimension"}


def _num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    text = f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _bytes(v: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.1f} {unit}"
    return f"{v:.0f} B"


def fmt_value(v: float, unit: str | None) -> str:
    """A value in the unit people read: 84.1%, 648 ms, 14.1 GB, 3.9 MB/s, 3,120/s."""
    u = (unit or "").lower()
    if u in ("percent", "%", "pct"):
        return f"{v:.1f}%"
    if u in ("bytes", "byte", "b"):
        return _bytes(v)
    if u in ("bytes/second", "bytes/s", "b/s"):
        return f"{_bytes(v)}/s"
    if u in ("count/second", "/s", "ops/s"):
        return f"{_num(v)}/s"
    if u in ("s", "seconds") and 0 < abs(v) < 1:
        return f"{_num(v * 1000)} ms"  # 0.0054 s reads as 5.4 ms, not "0.01 s"
    names = {"ms": "ms", "milliseconds": "ms", "s": "s", "seconds": "s", "count": ""}
    suffix = names.get(u, unit or "")
    return f"{_num(v)} {suffix}".strip()


def _rate(per_day: float, unit: str | None, horizon_s: float | None) -> str:
    step, per = (per_day, "day")
    if horizon_s is not None and horizon_s < 2 * 3600:
        step, per = per_day / 1440, "min"
    elif horizon_s is not None and horizon_s < 2 * 86400:
        step, per = per_day / 24, "hour"
    if (unit or "").lower() in ("percent", "%", "pct"):
        return f"{abs(step):.1f} points/{per}"
    return f"{fmt_value(abs(step), unit)}/{per}"


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return "under a minute" if seconds < 60 else f"{seconds / 60:.0f} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days ({seconds / 3600:.0f} hours)"


def _when(ts: datetime, ref: datetime) -> str:
    return f"{ts:%H:%M} UTC" if ts.date() == ref.date() else f"{ts:%Y-%m-%d %H:%M} UTC"


def series_name(s: Series, entity: str) -> str:
    """`db-host-02 /var/opt/mssql/data used_percent`: the entity, qualifying tag values, the field."""
    quals = [v for k, v in sorted(s.tags.items()) if v != entity and k not in NOISE_TAGS]
    return " ".join([entity, *quals, s.measurement if s.field == "value" else s.field])
