"""Understand a request without a model: the time window it asks about, explicit search terms, its intent.

Times are parsed by `dateparser` (search_dates finds the phrases, DateDataParser says how precise each
is) against the scenario or wall clock; its known false positives (bare numbers, words such as "may"
or "second") are guarded against by masking codes, addresses and names first and by keeping only
phrases that carry a date or time marker. What a phrase resolves to:

- a moment ("on August 2 at 13:45", "yesterday at 14:30"): +/- 30 minutes around it;
- a day, week, month or year ("yesterday", "last week", "last December"): the whole period;
- "since X" / "after X": X to now; "before X" / "until X": the default look-back ending at X;
- "last 2 hours", "past 3 days", "for 40 minutes": that long before now;
- "between A and B", "from A to B", "A-B": A to B.

An alert's window reaches back from now to 30 minutes before it started (at least the default
look-back). Without any time phrase the window is the default look-back before now.
"""

from __future__ import annotations

import calendar
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

AROUND = timedelta(minutes=30)  # a moment is looked at +/- this
ALERT_LEAD = timedelta(minutes=30)  # what happened just before an alert started matters too

Intent = Literal["summarise_errors", "health_check", "what_changed", "when_started", "compare", "diagnose"]


class TimeWindow(BaseModel):
    """The period an investigation looks at, and what in the request set it."""

    start: datetime
    end: datetime
    how: str = (
        "default"  # default | moment | day | week | month | year | range | since | before | last | alert
    )
    phrase: str | None = None  # the words that set it, e.g. "on August 2 at 13:45"

    def label(self) -> str:
        """``2026-08-02 13:15–14:15 UTC``; the date repeats only when the window crosses midnight."""
        s, e = self.start.astimezone(UTC), self.end.astimezone(UTC)
        if s.date() == e.date():
            return f"{s:%Y-%m-%d %H:%M}–{e:%H:%M} UTC"
        return f"{s:%Y-%m-%d %H:%M} – {e:%Y-%m-%d %H:%M} UTC"

    @property
    def is_default(self) -> bool:
        return self.how == "default"


class SearchTerm(BaseModel):
    text: str
    kind: Literal["quoted", "containing", "status_code", "error_code", "wait_type"]


class RequestScope(BaseModel):
    """What the planner understood: the window, explicit search terms and the intent."""

    window: TimeWindow
    terms: list[SearchTerm] = Field(default_factory=list)
    intent: list[Intent] = Field(default_factory=list)
    compare_with: TimeWindow | None = None
    replicas: list[tuple[str, str]] = Field(default_factory=list)  # (replica, primary) the request states

    @property
    def term_texts(self) -> list[str]:
        return [t.text for t in self.terms]

    def describe(self) -> str:
        """One line for the plan event and the answer."""
        parts = [f"looked at {self.window.label()}"]
        if self.window.phrase:
            parts[0] += f' ("{self.window.phrase}")'
        if self.terms:
            parts.append("searched for " + ", ".join(f'"{t.text}"' for t in self.terms))
        if self.compare_with is not None:
            parts.append(f"compared with {self.compare_with.label()}")
        return "; ".join(parts)


# --- search terms -------------------------------------------------------------------------------

_QUOTED = re.compile(r"\"([^\"]{1,120})\"|“([^”]{1,120})”|`([^`]{1,120})`|(?<![\w])'([^']{2,120})'(?![\w])")
_CONTAINING = re.compile(
    r"\b(?:contain(?:s|ing)?|matching|mention(?:s|ing)?|with the (?:text|word|string)|saying|that say)\s+"
    r"(?!the\b|a\b|an\b|any\b|some\b)([A-Za-z0-9_.:/-]{2,60})",
    re.IGNORECASE,
)
_STATUS = re.compile(
    r"\b(?:HTTP|status(?: code)?|returned|returning|throwing|got)\s*([1-5]\d\d)s?\b"
    r"|\b([45]\d\d)s?\s+(?:errors?|responses?|status)\b",
    re.IGNORECASE,
)
_ERROR_CODE = re.compile(
    r"\b([A-Z]{2,5}-\d{3,5})\b"  # ORA-00060, PLS-00201, MSG-...
    r"|\b(?:error|errno|msg|sqlstate|code)\s*[:#]?\s*([0-9][0-9A-Z]{3,4})\b"  # error 1205, SQLSTATE 40P01
    r"|\b(40P01|53300|57014|53100|08006|08001)\b",
    re.IGNORECASE,
)
_WAIT_TYPE = re.compile(
    r"\b((?:LCK_M|PAGEIOLATCH|PAGELATCH|WRITELOG|CXPACKET|CXCONSUMER|SOS_SCHEDULER|RESOURCE_SEMAPHORE|ASYNC_NETWORK|"
    r"HADR|THREADPOOL|IO_COMPLETION|LATCH)[A-Z0-9_]*)\b"
    r"|\b((?:Lock|LWLock|IO|IPC|Client|BufferPin|Activity|Timeout|CPU):[A-Za-z_]+)\b"
)


def search_terms(text: str) -> list[SearchTerm]:
    """Explicit search terms: quoted strings, 'containing X', HTTP status codes, error codes, wait types."""
    found: dict[str, SearchTerm] = {}

    def add(value: str, kind: Any) -> None:
        value = value.strip().strip(".,;:?!")
        if value and value.lower() not in {k.lower() for k in found}:
            found[value] = SearchTerm(text=value, kind=kind)

    for m in _QUOTED.finditer(text):
        add(next(g for g in m.groups() if g), "quoted")
    for m in _CONTAINING.finditer(text):
        add(m.group(1), "containing")
    for m in _STATUS.finditer(text):
        add(m.group(1) or m.group(2), "status_code")
    for m in _ERROR_CODE.finditer(text):
        add(next(g for g in m.groups() if g), "error_code")
    for m in _WAIT_TYPE.finditer(text):
        add(next(g for g in m.groups() if g), "wait_type")
    return list(found.values())


# --- intent -------------------------------------------------------------------------------------

_INTENTS: list[tuple[Intent, re.Pattern[str]]] = [
    (
        "summarise_errors",
        re.compile(r"\b(summar|list|show me|how many|which errors|what errors|count|lines?\b)", re.I),
    ),
    (
        "health_check",
        re.compile(
            r"\b(health|healthy|ok\b|okay|fine|alright|all right|worry|status of|going to be a problem)", re.I
        ),
    ),
    (
        "what_changed",
        re.compile(r"\b(what changed|changed|change\b|changes|deploy|deployed|release|rollout|reload)", re.I),
    ),
    ("when_started", re.compile(r"\b(when did|since when|start(ed|ing)?\b|begin|began|first)", re.I)),
    (
        "compare",
        re.compile(
            r"\b(compare|compared|versus|vs\.?|than (last|yesterday|usual|normal|before)|usual|normally)\b",
            re.I,
        ),
    ),
]


def intents(text: str) -> list[Intent]:
    found: list[Intent] = [name for name, pattern in _INTENTS if pattern.search(text)]
    if re.search(
        r"\b(why|cause|what'?s (going on|wrong|broken)|what happened|slow|fail|error|timing out)", text, re.I
    ):
        found.append("diagnose")
    return found or ["diagnose"]


# --- time ---------------------------------------------------------------------------------------

_MONTHS = "january february march april may june july august september october november december"
_MONTH_WORDS = {m for m in _MONTHS.split()} | {m[:3] for m in _MONTHS.split()} | {"sept"}
_DAYS = {d.lower() for d in calendar.day_name} | {d.lower()[:3] for d in calendar.day_name}
_UNITS = r"(?:minute|min|hour|hr|day|week|month|year)s?"
_RELATIVE = re.compile(
    r"\b(yesterday|today|tonight|this (?:morning|afternoon|evening)|last night|ago)\b"
    r"|\b(?:last|past|previous|within|for)\s+"
    r"(?:\d+|a|an|one|two|three|few|couple of)?\s*" + _UNITS + r"\b",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\d{1,2}:\d{2}|\d{4}-\d{2}-\d{2}|\b\d{1,2}\s*(?:am|pm)\b", re.IGNORECASE)
_LAST_N = re.compile(
    r"\b(?:in the |over the |during the )?(?:last|past|previous|within the last|for(?: the last)?)\s+"
    r"(\d+|a|an|one|two|three|few|couple of)?\s*(" + _UNITS + r")\b",
    re.IGNORECASE,
)
_WORD_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "few": 3, "couple of": 2, None: 1}
_RANGE = re.compile(
    r"\b(?:between|from)\s+(?P<a>.{3,40}?)\s+(?:and|to|until|till)\s+(?P<b>.{2,40}?)(?=[?.!,;]|$|\s+(?:on|at|in|for|yesterday|today))"
    r"|\b(?P<c>\d{1,2}:\d{2})\s*(?:-|–|to)\s*(?P<d>\d{1,2}:\d{2})\b",
    re.IGNORECASE,
)
_PARTS_OF_DAY = {"morning": (5, 12), "afternoon": (12, 18), "evening": (18, 23), "night": (18, 30)}
_MASK = [
    re.compile(r"\b[A-Za-z][\w.-]*:\d{2,5}\b"),  # host:port
    re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"),  # IPs
    re.compile(r"\b[A-Za-z]+[-_][\w-]*\d[\w-]*\b"),  # names with digits: sql-prod-01, etl-01
    re.compile(r"\b[A-Z]{2,5}-\d{3,5}\b"),  # ORA-00060
    re.compile(r"\b[45]\d\ds?\b(?!\s*(?:am|pm))", re.IGNORECASE),  # status codes
    re.compile(r"\b\d{5,}\b|\b\d+(?:\.\d+)?\s*(?:%|ms|s|sec|seconds|gb|mb)\b", re.IGNORECASE),
    re.compile(r"\b(?:error|errno|msg|code|sqlstate|version|v)\s*[:#]?\s*[\d.]+\b", re.IGNORECASE),
]


def _masked(text: str, names: list[str]) -> str:
    """The text with codes, addresses, names and numbers that are not times blanked out, and "about"/"around"
    dropped (dateparser reads "yesterday 14:30", not "yesterday around 14:30")."""
    out = text
    for name in sorted(names, key=len, reverse=True):
        out = re.sub(re.escape(name), lambda m: " " * len(m.group(0)), out, flags=re.IGNORECASE)
    for pattern in _MASK:
        out = pattern.sub(lambda m: " " * len(m.group(0)), out)
    out = re.sub(r"\b(around|about|approximately|roughly|circa)\b", " ", out, flags=re.I)
    for m in _QUOTED.finditer(out):
        out = out[: m.start()] + " " * (m.end() - m.start()) + out[m.end() :]
    return re.sub(r"[ \t]+", " ", out)


def _is_time_phrase(phrase: str) -> bool:
    """Guard against dateparser's false positives: a phrase counts only with a date or time marker."""
    words = {w.strip(".,").lower() for w in phrase.split()}
    if _MARKER.search(phrase) or _RELATIVE.search(phrase):
        return True
    if words & _MONTH_WORDS - {
        "may",
        "mar",
        "jun",
        "sep",
        "dec",
        "oct",
        "nov",
        "jan",
        "feb",
        "apr",
        "aug",
        "jul",
    }:
        return True  # an unambiguous month name
    if words & _MONTH_WORDS and re.search(r"\d", phrase):
        return True  # "May 3", "3 Mar"
    return bool(words & _DAYS and (re.search(r"\d", phrase) or words & {"last", "on", "this"}))


def _settings(now: datetime) -> dict[str, Any]:
    return {
        "RELATIVE_BASE": now.astimezone(UTC).replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",
        "TIMEZONE": "UTC",
        "TO_TIMEZONE": "UTC",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "RETURN_TIME_AS_PERIOD": True,
    }


def _parse(phrase: str, now: datetime) -> tuple[datetime, str] | None:
    """(moment, period) for a phrase: period is time | day | week | month | year | part_of_day."""
    from dateparser.date import DateDataParser

    try:
        data = DateDataParser(languages=["en"], settings=_settings(now)).get_date_data(phrase)
    except Exception as exc:  # a parser bug must not stop the investigation; the default window stands
        log.warning("time phrase %r not understood: %s", phrase, exc)
        return None
    if data.date_obj is None:
        return None
    return data.date_obj.replace(tzinfo=UTC), str(data.period or "day")


def _period(moment: datetime, period: str, phrase: str) -> tuple[datetime, datetime]:
    """The span a parsed phrase stands for."""
    if period == "time":
        return moment - AROUND, moment + AROUND
    if period == "part_of_day":
        part = next((p for p in _PARTS_OF_DAY if p in phrase.lower()), "morning")
        lo, hi = _PARTS_OF_DAY[part]
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return day + timedelta(hours=lo), day + timedelta(hours=hi)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    if period == "year":
        start = day.replace(month=1, day=1)
        return start, start.replace(year=start.year + 1)
    return day, day + timedelta(days=1)


def _qualifier(text: str, start: int) -> str | None:
    before = text[:start].lower().split()[-2:]
    for word in reversed(before):
        if word in ("since", "after", "from"):
            return "since"
        if word in ("before", "until", "till", "prior"):
            return "before"
    return None


def _clip(window: TimeWindow, now: datetime) -> TimeWindow | None:
    """The window cut at now; None when it lies wholly in the future ("before tonight's release")."""
    if window.start >= now:
        return None
    if window.end > now:
        window.end = now
    if window.start >= window.end:
        window.start = window.end - AROUND
    return window


def time_window(text: str, now: datetime, default: timedelta, names: list[str] | None = None) -> TimeWindow:
    """Resolve the request's time phrases against `now` (see the module docstring)."""
    masked = _masked(text, list(names or []))
    window = _resolve(masked, now, default)
    if window is None:
        return TimeWindow(start=now - default, end=now)
    if window.end < now and window.how not in ("range", "before") and _NOW.search(masked):
        window.end = now  # "is it healthy now? it broke yesterday": from then until now
    return window


_NOW = re.compile(r"\b(now|currently|still|at the moment)\b", re.IGNORECASE)


def _last_n(m: re.Match[str], now: datetime) -> TimeWindow:
    count = m.group(1)
    n = int(count) if count and count.isdigit() else _WORD_NUMBERS.get(count.lower() if count else None, 1)
    unit = m.group(2).lower().rstrip("s")
    size = {
        "minute": timedelta(minutes=n),
        "min": timedelta(minutes=n),
        "hour": timedelta(hours=n),
        "hr": timedelta(hours=n),
        "day": timedelta(days=n),
        "week": timedelta(weeks=n),
        "month": timedelta(days=30 * n),
        "year": timedelta(days=365 * n),
    }[unit]
    return TimeWindow(start=now - size, end=now, how="last", phrase=m.group(0).strip())


def _range(m: re.Match[str], masked: str, now: datetime) -> TimeWindow | None:
    a, b = (m.group("a"), m.group("b")) if m.group("a") else (m.group("c"), m.group("d"))
    tail = masked[m.end() : m.end() + 40]
    context = re.search(r"\b(yesterday|today|on \w+ \d{1,2})\b", tail, re.I)
    suffix = f" {context.group(1)}" if context else ""
    pa, pb = _parse(a + suffix, now), _parse(b + suffix, now)
    if not (pa and pb and _is_time_phrase(a + suffix) and _is_time_phrase(b + suffix)):
        return None
    start = _period(pa[0], pa[1], a)[0] if pa[1] != "time" else pa[0]
    end = _period(pb[0], pb[1], b)[1] if pb[1] != "time" else pb[0]
    if end <= start and pa[1] == "time":  # "22:00-02:00": over midnight
        if end + timedelta(days=1) > now:
            start -= timedelta(days=1)
        else:
            end += timedelta(days=1)
    if start >= end:
        return None
    return _clip(TimeWindow(start=start, end=end, how="range", phrase=m.group(0).strip()), now)


def _resolve(masked: str, now: datetime, default: timedelta) -> TimeWindow | None:
    if (m := _LAST_N.search(masked)) is not None:
        return _last_n(m, now)
    if (m := _RANGE.search(masked)) is not None and (window := _range(m, masked, now)) is not None:
        return window
    from dateparser.search import search_dates

    try:
        found = search_dates(masked, languages=["en"], settings=_settings(now)) or []
    except Exception as exc:  # the default window stands
        log.warning("time phrases in %r not understood: %s", masked, exc)
        found = []
    for phrase, _ in found:
        if not _is_time_phrase(phrase) or (parsed := _parse(phrase, now)) is None:
            continue
        moment, period = parsed
        at = masked.find(phrase)
        qualifier = _qualifier(masked, at)
        lead = masked[max(0, at - 12) : at].strip().split()
        preps = ("on", "at", "since", "before", "after", "in", "until", "last")
        shown = " ".join([*lead[-1:], phrase]) if lead and lead[-1].lower() in preps else phrase
        shown = re.sub(r"\s+(?:on|at|in|for)$", "", " ".join(shown.split()))
        start, end = _period(moment, period, phrase)
        edge = start if period != "time" else moment
        if qualifier == "since":
            window = TimeWindow(start=edge, end=now, how="since", phrase=shown)
        elif qualifier == "before":
            window = TimeWindow(start=edge - default, end=edge, how="before", phrase=shown)
        else:
            how = {"time": "moment", "part_of_day": "day"}.get(period, period)
            window = TimeWindow(start=start, end=end, how=how, phrase=shown)
        if (clipped := _clip(window, now)) is not None:
            return clipped
    return None


def alert_window(starts_at: datetime | None, now: datetime, default: timedelta) -> TimeWindow:
    """From 30 minutes before the alert started (at least the default look-back) to now."""
    start = now - default
    if starts_at is not None and starts_at - ALERT_LEAD < start:
        start = max(starts_at - ALERT_LEAD, now - timedelta(days=7))
        return TimeWindow(
            start=start, end=now, how="alert", phrase=f"alert started {starts_at:%Y-%m-%d %H:%M} UTC"
        )
    return TimeWindow(start=start, end=now)


_NAME = r"([A-Za-z][\w.-]*[\w])"
_REPLICATION = (  # (pattern, index of the replica group, index of the primary group)
    (re.compile(rf"\breplicat\w*\s+from\s+{_NAME}\s+(?:to|into|onto)\s+{_NAME}", re.I), 2, 1),
    (re.compile(rf"\b{_NAME}\s+(?:->|→|to)\s+{_NAME}\s+replication\b", re.I), 2, 1),
    (re.compile(rf"\b{_NAME}\s+replicates\s+(?:to|into)\s+{_NAME}", re.I), 2, 1),
    (re.compile(rf"\b{_NAME}\s+(?:replicates|streams)\s+from\s+{_NAME}", re.I), 1, 2),
    (
        re.compile(
            rf"\b{_NAME},?\s+(?:is\s+)?(?:a|the)\s+(?:replica|standby|secondary)\s+of\s+{_NAME}", re.I
        ),
        1,
        2,
    ),
)


def replication_pairs(text: str, names: list[str]) -> list[tuple[str, str]]:
    """(replica, primary) pairs the request states ("replication from db1 to db2", "db2 is a replica of
    db1"), kept only when both are known names: the causal links may then run from load on the primary
    to lag on the replica."""
    known = {n.lower(): n for n in names}
    pairs = []
    for pattern, r, p in _REPLICATION:
        for m in pattern.finditer(text):
            replica, primary = known.get(m.group(r).lower()), known.get(m.group(p).lower())
            if replica and primary and replica != primary:
                pairs.append((replica, primary))
    return list(dict.fromkeys(pairs))


def understand(
    request: str,
    alert: dict[str, Any] | None,
    now: datetime,
    default_lookback: timedelta,
    names: list[str] | None = None,
) -> RequestScope:
    """The request's window, search terms and intent. `names` (inventory names) are never read as times."""
    if alert:
        starts = alert.get("starts_at")
        try:
            from tools.world import parse_ts

            started = parse_ts(starts) if starts else None
        except ValueError:
            started = None
        window = alert_window(started, now, default_lookback)
        return RequestScope(window=window, terms=[], intent=["diagnose"])
    window = time_window(request, now, default_lookback, names or [])
    terms = search_terms(request)
    found = intents(request)
    compare = None
    if "compare" in found:
        span = window.end - window.start
        back = timedelta(days=7) if re.search(r"last week|a week ago", request, re.I) else timedelta(days=1)
        compare = TimeWindow(start=window.start - back, end=window.start - back + span, how="compare")
    replicas = replication_pairs(request, names or [])
    return RequestScope(window=window, terms=terms, intent=found, compare_with=compare, replicas=replicas)


__all__ = [
    "RequestScope",
    "SearchTerm",
    "TimeWindow",
    "alert_window",
    "replication_pairs",
    "search_terms",
    "time_window",
    "understand",
]
