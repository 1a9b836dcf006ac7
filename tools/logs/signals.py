"""What log lines say at any level: numbers (durations, pool usage, status codes, retries), failures towards
a named peer (dependencies), and the changes logged just before the first error (precursors).

Pure functions over LogRecords; tools.logs.signal_views turns them into findings."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from tools.logs.analysis import LEVEL_RANK, message_template
from tools.world import LogRecord

# --- durations: "Database call completed in 9.01 seconds", "took 2300 ms", "duration=1.2s" -----------

_DURATION = re.compile(
    r"\b(?:completed|complete|took|finished|returned|responded|elapsed|duration|latency|response time|in)\b"
    r"[\s:=]*(?:in\s+|after\s+)?(\d+(?:\.\d+)?)\s*(ms|msec|milliseconds?|s|secs?|seconds?|min|minutes?)\b",
    re.IGNORECASE,
)
_NOT_A_CALL = re.compile(
    r"timed out|timeout|waited|no response|set to|interval|every|ttl|retry in", re.IGNORECASE
)
_UNIT_S = {
    "ms": 0.001,
    "msec": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
}


def duration_s(message: str) -> float | None:
    """The duration a line reports for a completed call, in seconds (None for timeouts and settings)."""
    if _NOT_A_CALL.search(message):
        return None
    m = _DURATION.search(message)
    if m is None:
        return None
    return round(float(m.group(1)) * _UNIT_S[m.group(2).lower()], 6)


class SlowCalls(BaseModel):
    """Lines of one template that report durations, and whether they are slow now."""

    template: str
    example: str
    count: int
    slow: int  # lines at or above the threshold
    since: datetime | None  # the first slow line of the trailing slow run
    latest_s: float
    median_s: float  # of the slow run (or of all lines)
    max_s: float
    before_s: float | None  # median of the lines before the slow run
    threshold_s: float


def slow_calls(records: Sequence[LogRecord], threshold_s: float) -> list[SlowCalls]:
    """Per message template, the durations it reports: slow when the latest lines are at or above
    `threshold_s`, or 5x the lines before them and at least a fifth of the threshold."""
    groups: dict[str, list[tuple[LogRecord, float]]] = {}
    for r in records:
        if (d := duration_s(r.message)) is not None:
            groups.setdefault(message_template(r.message), []).append((r, d))
    out = []
    for template, rows in groups.items():
        values = [d for _, d in rows]
        run = 0
        for d in reversed(values):
            if d < threshold_s:
                break
            run += 1
        before = values[: len(values) - run] if run else []
        if not run and len(values) >= 4:
            half = len(values) // 2
            early, late = statistics.median(values[:half]), statistics.median(values[half:])
            if late >= 5 * early and late >= threshold_s / 5:
                run = len(values) - next(i for i, d in enumerate(values) if i >= half and d >= late / 2)
                before = values[: len(values) - run]
        if not run:
            continue
        recent = values[len(values) - run :]
        out.append(
            SlowCalls(
                template=template,
                example=rows[-1][0].message,
                count=len(values),
                slow=run,
                since=rows[len(values) - run][0].timestamp,
                latest_s=values[-1],
                median_s=statistics.median(recent),
                max_s=max(recent),
                before_s=statistics.median(before) if before else None,
                threshold_s=threshold_s,
            )
        )
    return sorted(out, key=lambda s: -s.median_s)


# --- pool usage: "active=20 ... total=20", "pool 3/40 in use", "(active 20/20, waiting 45)" -------------

_POOL_WORDS = re.compile(
    r"pool|connections?|conns?|slots?|workers?|threads?|in use|active|busy", re.IGNORECASE
)
_KV = re.compile(
    r"\b(total|active|idle|waiting|pending|max|maximum|size|in[_ ]use|used|busy)\s*[=:]\s*(\d+)", re.I
)
_FRACTION = re.compile(r"(?<![\w./:-])(\d{1,6})\s*/\s*(\d{1,6})(?![\w./:-])")
_POOL_NAME = re.compile(
    r"\b([A-Za-z][\w.-]*pool[\w.-]*\d[\w.-]*|pool\s+(?!\d)[A-Za-z][\w.-]*)", re.IGNORECASE
)


class PoolUsage(BaseModel):
    used: int
    size: int
    waiting: int | None = None
    name: str | None = None

    @property
    def ratio(self) -> float:
        return self.used / self.size if self.size else 0.0


def pool_usage(message: str) -> PoolUsage | None:
    """Pool occupancy a line reports (HikariCP stats, "n/m in use", "active n/m"); None otherwise."""
    if not _POOL_WORDS.search(message) or re.search(r"\battempt|\bretr|\bpage\b|\bstep\b", message, re.I):
        return None
    kv = {k.lower().replace(" ", "_"): int(v) for k, v in _KV.findall(message)}
    name_m = _POOL_NAME.search(message)
    name = name_m.group(1) if name_m else None
    size = kv.get("total") or kv.get("max") or kv.get("maximum") or kv.get("size")
    used = kv.get("active", kv.get("in_use", kv.get("used", kv.get("busy"))))
    waiting = kv.get("waiting", kv.get("pending"))
    if size and used is not None:
        return PoolUsage(used=used, size=size, waiting=waiting, name=name)
    m = _FRACTION.search(message)
    if m and re.search(r"pool|in use|active|connections?|slots?", message, re.IGNORECASE):
        used_f, size_f = int(m.group(1)), int(m.group(2))
        if size_f > 0 and used_f <= size_f:
            return PoolUsage(used=used_f, size=size_f, waiting=waiting, name=name)
    return None


class PoolSaturation(BaseModel):
    name: str | None
    used: int
    size: int
    waiting: int | None
    since: datetime  # first line of the trailing saturated run
    lines: int
    before: str | None  # usage before the run, e.g. "6/20"


def pool_saturation(records: Sequence[LogRecord], ratio: float) -> PoolSaturation | None:
    """The trailing run of pool lines at or above `ratio` of the pool's size (or with callers waiting
    on a full pool)."""
    seen = [(r, u) for r in records if (u := pool_usage(r.message)) is not None]
    run: list[tuple[LogRecord, PoolUsage]] = []
    for r, u in reversed(seen):
        if u.ratio < ratio and not (u.waiting and u.used >= u.size):
            break
        run.insert(0, (r, u))
    if not run:
        return None
    last = run[-1][1]
    earlier = seen[: len(seen) - len(run)]
    before = f"{earlier[-1][1].used}/{earlier[-1][1].size}" if earlier else None
    waiting = max((u.waiting or 0) for _, u in run) or None
    return PoolSaturation(
        name=last.name,
        used=last.used,
        size=last.size,
        waiting=waiting,
        since=run[0][0].timestamp,
        lines=len(run),
        before=before,
    )


# --- status codes and retries -------------------------------------------------------------------

_STATUS = re.compile(
    r"\bHTTP(?:/\d(?:\.\d)?\"?)?\s+([1-5]\d\d)\b|\bstatus(?:[_ ]?code)?\s*[=:]?\s*([1-5]\d\d)\b"
    r"|\breturned\s+(?:HTTP\s+)?([1-5]\d\d)\b|\"\s+([1-5]\d\d)\s+\d+",
    re.IGNORECASE,
)


def status_code(message: str) -> str | None:
    m = _STATUS.search(message)
    return next((g for g in m.groups() if g), None) if m else None


class StatusCounts(BaseModel):
    total: int  # lines that carry a status code
    by_code: dict[str, int]
    server_errors: int  # 5xx
    first_error: datetime | None
    last_error: datetime | None

    @property
    def error_share(self) -> float:
        return self.server_errors / self.total if self.total else 0.0


def status_counts(records: Sequence[LogRecord]) -> StatusCounts | None:
    found = [(r, c) for r in records if (c := status_code(r.message)) is not None]
    if not found:
        return None
    by: dict[str, int] = {}
    for _, c in found:
        by[c] = by.get(c, 0) + 1
    errs = [r.timestamp for r, c in found if c.startswith("5")]
    return StatusCounts(
        total=len(found),
        by_code=dict(sorted(by.items())),
        server_errors=len(errs),
        first_error=min(errs, default=None),
        last_error=max(errs, default=None),
    )


_RETRY = re.compile(r"\bretr(?:y|ying|ies|ied)\b|\battempt\s*#?\d+", re.IGNORECASE)
_GAVE_UP = re.compile(
    r"giving up|gave up|retries exhausted|retry \d+/\d+ exhausted|max(?:imum)? retries|after \d+ attempts",
    re.I,
)


class Retries(BaseModel):
    retries: int
    gave_up: int
    first: datetime
    last: datetime
    example: str


def retries(records: Sequence[LogRecord]) -> Retries | None:
    hits = [r for r in records if _RETRY.search(r.message) or _GAVE_UP.search(r.message)]
    if not hits:
        return None
    gave_up = [r for r in hits if _GAVE_UP.search(r.message)]
    return Retries(
        retries=len(hits) - len(gave_up),
        gave_up=len(gave_up),
        first=hits[0].timestamp,
        last=hits[-1].timestamp,
        example=(gave_up or hits)[-1].message,
    )


# --- dependencies: failures towards a named peer ------------------------------------------------

_FAILURE = re.compile(
    r"(?P<kind>timed out|time[d ]?out (?:after|waiting|expired|exceeded|while|connecting|on)|timeout expired|"
    r"i/o timeout|read timeout|connect(?:ion)? timeout(?! set)|no response|not responding|did not respond|"
    r"connection refused|refused|unreachable|no route to host|connection reset|reset by peer|"
    r"could not connect|cannot connect|can't connect|failed to connect|unable to connect|connect\(\) failed|"
    r"name or service not known|could not resolve|host is down|returned (?:HTTP )?5\d\d|5\d\d from upstream|"
    r"rejected|not accepting (?:commands|connections|writes)|too many connections|"
    r"connection slots are reserved)",
    re.IGNORECASE,
)
_PEER_ADDR = re.compile(
    r"(?<![\w.-])((?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z][\w-]*(?:\.[\w-]+)*):(\d{2,5}))(?![\w.])"
)
_PEER_WORD = re.compile(
    r"\b(?:to|upstream|host|server|from|against|on|at|reach|contact)\s+[\"'(]?([A-Za-z][\w-]*\d[\w-]*|[A-Za-z][\w]*-[\w-]+)",
    re.IGNORECASE,
)
_KIND_WORDS = {
    "refused": "refused",
    "unreachable": "unreachable",
    "no route": "unreachable",
    "reset": "reset",
    "resolve": "unresolvable",
    "not known": "unresolvable",
    "5": "server error",
}


def _failure_kind(text: str) -> str:
    low = text.lower()
    if "refused" in low or "reject" in low or "not accepting" in low:
        return "refused"
    if "too many connections" in low or "slots" in low:
        return "connections exhausted"
    if "respon" in low:
        return "no response"
    for word, kind in _KIND_WORDS.items():
        if word in low:
            return kind
    if "connect" in low and "time" not in low:
        return "cannot connect"
    return "timeout"


def peer_of(message: str, own: set[str]) -> str | None:
    """The peer a failure line names: a host:port, else a host-like name after to/upstream/host/on ..."""
    for m in _PEER_ADDR.finditer(message):
        host = m.group(1).split(":")[0]
        if host.lower() not in own and not re.fullmatch(r"\d{1,2}", m.group(2)):
            return m.group(1)
    for m in _PEER_WORD.finditer(message):
        name = m.group(1).strip("\"'(),.")
        if name.lower() not in own and not re.fullmatch(r"(?i)http|https|tcp|udp|the|a", name):
            return name
    return None


class DependencyFailure(BaseModel):
    """One entity's failures towards one peer."""

    peer: str  # as logged: pg-orders-01:5432, 10.0.4.21:3306, search-api
    peer_host: str  # without the port
    kinds: list[str]  # timeout | no response | refused | unreachable | ...
    count: int
    first_seen: datetime
    last_seen: datetime
    worst: str  # the worst level among the lines
    example: str


def dependency_failures(records: Sequence[LogRecord], own: set[str]) -> list[DependencyFailure]:
    """Lines at any level that report a timeout, no response, refusal or unreachability towards a named
    peer, grouped by peer; most lines first."""
    out: dict[str, DependencyFailure] = {}
    for r in records:
        kinds = list(dict.fromkeys(_failure_kind(m.group("kind")) for m in _FAILURE.finditer(r.message)))
        if not kinds or (peer := peer_of(r.message, own)) is None:
            continue
        d = out.get(peer)
        if d is None:
            host = peer.rsplit(":", 1)[0] if _PEER_ADDR.fullmatch(peer) else peer
            d = out[peer] = DependencyFailure(
                peer=peer,
                peer_host=host,
                kinds=[],
                count=0,
                first_seen=r.timestamp,
                last_seen=r.timestamp,
                worst=r.severity,
                example=r.message,
            )
        d.count += 1
        d.last_seen, d.example = r.timestamp, r.message
        d.kinds += [k for k in kinds if k not in d.kinds]
        if LEVEL_RANK[r.severity] > LEVEL_RANK[d.worst]:
            d.worst = r.severity
    return sorted(out.values(), key=lambda d: -d.count)


# --- precursors: what changed just before the first error ---------------------------------------

_CHANGES: list[tuple[str, re.Pattern[str]]] = [
    (
        "configuration reload",
        re.compile(
            r"\breload(?:ed|ing)?\b.{0,40}\bconfig|\bconfig\w*\b.{0,40}\breload(?:ed)?\b|"
            r"\bconfig(?:uration)? (?:changed|updated|applied)",
            re.I,
        ),
    ),
    (
        "deploy",
        re.compile(
            r"\bdeploy(?:ed|ing|ment)\b|\brolled out\b|\brollout\b|\bupgraded? to\b|"
            r"\bnew version\b|\bversion \d+\.\d+|\brelease \d",
            re.I,
        ),
    ),
    (
        "restart",
        re.compile(r"\brestart(?:ed|ing)\b|\bshutting down\b|\bstarting up\b|\breboot(?:ed|ing)?\b", re.I),
    ),
    ("failover", re.compile(r"\bfailover\b|\bpromoted to primary\b|\bnew primary\b|\bswitchover\b", re.I)),
    ("schema change", re.compile(r"\bmigration\b|\balter table\b|\bschema change\b", re.I)),
    (
        "feature flag",
        re.compile(r"\bfeature flag\b|\bflag .{0,30}(enabled|disabled|turned on|turned off)", re.I),
    ),
]
PRECURSOR_WINDOW = timedelta(minutes=30)


class Precursor(BaseModel):
    change: str  # configuration reload | deploy | restart | failover | schema change | feature flag
    at: datetime
    message: str
    first_error: datetime
    first_error_message: str
    lead_s: float = Field(description="seconds between the change and the first error")


def precursors(records: Sequence[LogRecord], window: timedelta = PRECURSOR_WINDOW) -> list[Precursor]:
    """Changes logged (at any level) within `window` before the first error-or-worse line, nearest first."""
    ordered = sorted(records, key=lambda r: r.timestamp)
    first = next((r for r in ordered if LEVEL_RANK[r.severity] >= LEVEL_RANK["error"]), None)
    if first is None:
        return []
    out = []
    for r in ordered:
        if r.timestamp > first.timestamp or first.timestamp - r.timestamp > window or r is first:
            continue
        if LEVEL_RANK[r.severity] >= LEVEL_RANK["error"]:
            continue
        change = next((name for name, pattern in _CHANGES if pattern.search(r.message)), None)
        if change is not None:
            out.append(
                Precursor(
                    change=change,
                    at=r.timestamp,
                    message=r.message,
                    first_error=first.timestamp,
                    first_error_message=first.message,
                    lead_s=(first.timestamp - r.timestamp).total_seconds(),
                )
            )
    return sorted(out, key=lambda p: p.lead_s)
