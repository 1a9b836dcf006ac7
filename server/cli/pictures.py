"""The console's pictures, compactly for a terminal: sparklines, box-drawing trees, bars."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from server.pictures import BlockingTree, InterfaceRates, Picture, SeriesPicture, TreeNode, WaitProfile

TICKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 48
BAR_WIDTH = 24


def sparkline(
    values: list[float], width: int = SPARK_WIDTH, low: float | None = None, high: float | None = None
) -> str:
    """One character per bucket (the bucket's mean), scaled between `low` and `high`."""
    if not values:
        return ""
    if len(values) > width:
        size = len(values) / width
        values = [
            sum(chunk) / len(chunk)
            for b in range(width)
            if (chunk := values[int(b * size) : int((b + 1) * size)])
        ]
    lo = min(values) if low is None else low
    hi = max(values) if high is None else high
    span = hi - lo
    if span <= 0:
        return TICKS[3] * len(values)
    return "".join(TICKS[min(7, max(0, int((v - lo) / span * 7.999)))] for v in values)


def _num(v: float, unit: str | None) -> str:
    text = f"{v:.1f}".rstrip("0").rstrip(".") if abs(v) < 1e4 else f"{v:,.0f}"
    if unit and unit.lower() in ("percent", "%"):
        return text + "%"
    return f"{text} {unit}" if unit else text


def _when(iso: str) -> str:
    return f"{datetime.fromisoformat(iso.replace('Z', '+00:00')):%Y-%m-%d %H:%M} UTC"


def _dur(ms: float) -> str:
    s = ms / 1000
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"


def series_lines(p: SeriesPicture) -> list[str]:
    values = [v for _, v in p.points]
    line = sparkline(values)
    if p.step is not None:  # mark where the level changed
        times = [t for t, _ in p.points]
        at = sum(1 for t in times if t < p.step.at)
        pos = round(at / len(times) * len(line))
        line = line[:pos] + "╎" + line[pos:]
    notes = [f"latest {_num(values[-1], p.unit)}"]
    if p.step is not None:
        levels = f"{_num(p.step.before, p.unit)} → {_num(p.step.after, p.unit)}"
        notes.append(f"step at {_when(p.step.at)}: {levels}")
    if p.baseline is not None:
        notes.append(f"baseline {_num(p.baseline.low, p.unit)}–{_num(p.baseline.high, p.unit)}")
    if p.forecast is not None:
        line += " ┄┄→ " + _num(p.forecast.threshold, p.unit)
        notes.append(f"reaches {_num(p.forecast.threshold, p.unit)} around {_when(p.forecast.to_ts)}")
    elif p.threshold is not None:
        notes.append(f"limit {_num(p.threshold, p.unit)}")
    return [f"{p.label or p.entity}", f"  {line}", f"  {'; '.join(notes)}"]


def _node_text(n: TreeNode, head: bool) -> str:
    parts = [f"{'head blocker ' if head else ''}session {n.session}"]
    parts += [x for x in (n.who, n.program) if x]
    if head:
        parts.append(n.state)
    elif n.cycle_to is not None:
        parts.append(f"↺ waits for session {n.cycle_to} (cycle)")
    else:
        parts.append(f"{n.wait_type or 'waiting'} {_dur(n.wait_ms)}")
    return " · ".join(p for p in parts if p)


def tree_lines(p: BlockingTree) -> list[str]:
    title = "Deadlock" if p.deadlock else "Blocking chain"
    lines = [f"{title} on {p.entity}: {p.blocked} blocked, longest wait {_dur(p.max_wait_ms)}"]
    lines.append("  " + _node_text(p.head, head=True))

    def walk(node: TreeNode, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(f"  {prefix}{'└─ ' if last else '├─ '}{_node_text(child, head=False)}")
            walk(child, prefix + ("   " if last else "│  "))

    walk(p.head, "")
    return lines


def _bar(fraction: float, width: int = BAR_WIDTH) -> str:
    cells = max(0.0, min(1.0, fraction)) * width
    full = int(cells)
    part = " ▏▎▍▌▋▊▉"[int((cells - full) * 8)] if full < width else ""
    return ("█" * full + part.strip()).ljust(width)


def wait_lines(p: WaitProfile) -> list[str]:
    top = max((b.ms for b in p.bars), default=1.0) or 1.0
    width = max(len(b.cause) for b in p.bars)
    lines = [f"Wait time by cause on {p.entity}: {_dur(p.total_ms)}"]
    lines += [f"  {b.cause:<{width}} {_bar(b.ms / top)} {b.share_pct:5.1f}%  {_dur(b.ms)}" for b in p.bars]
    return lines


def interface_lines(p: InterfaceRates) -> list[str]:
    width = max((len(i.name) for i in p.interfaces), default=4)
    lines = [f"Interfaces of {p.entity}"]
    for i in p.interfaces:
        if i.in_util_pct is None:
            lines.append(f"  {i.name:<{width}} {i.state.replace('_', ' ')}")
            continue
        util = (
            f"in {_bar(i.in_util_pct / 100, 10)} {i.in_util_pct:3.0f}%  "
            f"out {_bar((i.out_util_pct or 0) / 100, 10)} {i.out_util_pct or 0:3.0f}%"
        )
        rates = [
            f"{name} {v:.1f}/s"
            for name, v in (
                ("in errors", i.in_error_rate),
                ("out errors", i.out_error_rate),
                ("discards", i.discard_rate),
            )
            if v
        ]
        flag = "  ⚠ " + ", ".join(i.problems) if i.problems else ""
        lines.append(f"  {i.name:<{width}} {util}  {'  '.join(rates)}{flag}".rstrip())
    return lines


def picture_lines(pictures: Sequence[dict[str, Any]] | Sequence[Picture]) -> list[str]:
    """Every picture as text lines, each headed by its finding number and evidence ref."""
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Picture] = TypeAdapter(Picture)
    out: list[str] = []
    for raw in pictures:
        p = adapter.validate_python(raw)
        if isinstance(p, SeriesPicture):
            body = series_lines(p)
        elif isinstance(p, BlockingTree):
            body = tree_lines(p)
        elif isinstance(p, WaitProfile):
            body = wait_lines(p)
        else:
            body = interface_lines(p)
        ref = f" [{p.evidence_ref}]" if p.evidence_ref else ""
        out.append(f"  {p.finding}. {body[0]}{ref}")
        out += [f"     {line}" for line in body[1:]]
    return out
