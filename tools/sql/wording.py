"""Phrasing helpers for the database findings: durations, percentages, sizes and who a session is."""

from __future__ import annotations

import re


def _num(x: float, digits: int = 1) -> str:
    text = f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _ms(x: float | None) -> str:
    if x is None or x >= 1_000:
        return _secs(x)
    return f"{_num(x, 1 if x >= 1 else 3)} ms"


def _secs(ms: float | None) -> str:
    if ms is None:
        return "? s"
    s = ms / 1000.0
    return f"{_num(s, 1)} s" if s < 10 else f"{s:.0f} s"


def _dur(ms: float | None) -> str:
    """A duration in the unit people read: milliseconds under 1 s, seconds up to 2 min, minutes up to 2 h,
    then hours."""
    if ms is not None and 0 < ms < 1000:
        return f"{ms:.0f} ms"
    if ms is None or ms < 120_000:
        return _secs(ms)
    return f"{ms / 60_000:.0f} min" if ms < 7_200_000 else f"{_num(ms / 3_600_000)} h"


def _mins(ms: float) -> str:
    return f"{ms / 60_000:.0f} min" if ms >= 60_000 else _secs(ms)


def _pct(p: float) -> str:
    return f"{p:.0f}%" if p >= 10 else f"{_num(p)}%"


def _mb(x: float | None) -> str:
    return "?" if x is None else f"{x:.0f}"


def _who(login: str | None, host: str | None, program: str | None) -> str:
    user = "@".join(p for p in (login, host) if p)
    return ", ".join(p for p in (user, program) if p)


def _session(sid: int, login: str | None, host: str | None, program: str | None) -> str:
    who = _who(login, host, program)
    return f"session {sid} ({who})" if who else f"session {sid}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def _hosts(hosts: list[str], limit: int = 3) -> str:
    """Hosts in few words: '10.12.4.21-24' for a run of numbered names sharing a prefix, else a short list."""
    if not hosts:
        return ""
    matches = [m for h in hosts if (m := _TRAILING_NUMBER.match(h))]
    if len(hosts) > 1 and len(matches) == len(hosts) and len({m.group(1) for m in matches}) == 1:
        ordered = sorted(matches, key=lambda m: int(m.group(2)))
        numbers = [int(m.group(2)) for m in ordered]
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return f"{ordered[0].group(0)}-{ordered[-1].group(2)}"
    shown = ", ".join(hosts[:limit])
    return shown + (f" and {len(hosts) - limit} more" if len(hosts) > limit else "")
