"""The known cause -> effect relations between findings, and the facts they rest on (the one place
graphs/correlate.py asks "does this explain that?").

A relation needs the same entity or a dependency edge the findings themselves establish (a logged
peer host:port, a blocked session's client host or program, a replica's name, one finding naming the
other's entity), a plausible order in time, and a known mechanism. `relation(c, e)` returns why `c`
explains `e`, and whether the two are the same fact seen twice rather than a cause and its effect.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tools.base import Finding, Severity
from tools.inventory import replica_of
from tools.world import parse_ts

Resolve = Callable[[str], str | None]
SLACK = timedelta(minutes=10)  # clocks and sampling: an effect may appear to start a little early
AFTER_CHANGE = timedelta(minutes=60)  # what moves this soon after a change is linked to it

_SYMPTOM_KINDS = {
    "error_signature",
    "dependency_failure",
    "server_errors",
    "slow_calls",
    "step_change",
    "metric_anomaly",
    "metric_high",
    "rising_trend",
    "regressed_query",
    "log_burst",
    "retries",
    "wait_profile",
    "log_search",
    "deadlock",
    "peer_outlier",
    "days_until_full",
    "capacity_exhausted",
    "pool_saturated",
}
_CHANGE_KINDS = {"log_precursor", "change_in_window"}
_SPACE_KINDS = {
    "capacity_exhausted",
    "days_until_full",
    "log_nearly_full",
    "tempdb_nearly_full",
    "volume_low",
}
_POOL_KINDS = {"pool_saturated", "connection_pool_leak"}
_FAILURE_WORDS = re.compile(
    r"timeout|timed out|time out|refused|no response|unreachable|503|502|504|5xx|fail|"
    r"could not|cannot connect|exception|error",
    re.IGNORECASE,
)
_LOAD_SERIES = re.compile(
    r"latency|duration|p9\d|response|queue|wait|iops|throughput|load|connections|"
    r"commit|read|write|error|cpu|lag",
    re.IGNORECASE,
)


def key(f: Finding) -> str:
    return f"{f.kind}|{f.entity}|{f.title}"


# --- facts about findings ---------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        return parse_ts(value)
    except (TypeError, ValueError):
        return None


def onset(f: Finding, now: datetime) -> datetime | None:
    """When what a finding describes began, as far as its data says."""
    d = f.data
    for field in ("since", "first_seen", "at", "start", "start_date", "first_ts", "first_error"):
        if (t := _time(d.get(field))) is not None:
            return t
    head = d.get("head") if isinstance(d.get("head"), dict) else None
    elapsed = (head or d).get("elapsed_ms")
    if f.kind in ("blocking_chain", "long_open_transaction") and isinstance(elapsed, int | float) and elapsed:
        return now - timedelta(milliseconds=float(elapsed))
    return None


def _norm_sql(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"'[^']*'|@\w+|\$\d+|\?|\d+", "?", text or "")).strip().lower()


def _blocked(f: Finding) -> list[dict[str, Any]]:
    blocked = f.data.get("blocked")  # a blocking chain's waiters (other findings may carry a flag here)
    return [b for b in blocked if isinstance(b, dict)] if isinstance(blocked, list) else []


def _head_id(f: Finding) -> str | None:
    v = f.data.get("head_session_id")
    return None if v is None else str(v)


def is_problem(f: Finding) -> bool:
    return f.severity is not Severity.INFO and f.kind != "similar_incident"


def series_of(f: Finding) -> str:
    return str(f.data.get("series") or f.title)


class Facts:
    """Entity relations the findings themselves establish (dependency edges)."""

    def __init__(
        self, findings: list[Finding], resolve: Resolve, replicas: list[tuple[str, str]] | None = None
    ) -> None:
        self.resolve = resolve
        self.replicas = {(r.lower(), p.lower()) for r, p in replicas or []}  # stated in the request
        self.edges: set[tuple[str, str]] = set()  # (caller, dependency), lower-case entity names
        self.clients: dict[str, set[str]] = {}  # instance -> its blocked sessions' hosts and programs
        self.kinds: dict[str, set[str]] = {}  # entity -> the kinds of finding on it
        for f in findings:
            self.kinds.setdefault(f.entity.lower(), set()).add(f.kind)
        for f in findings:
            caller = f.entity.lower()
            for field in ("peer", "peer_host"):
                if isinstance(peer := f.data.get(field), str):
                    name = resolve(peer) or peer.split(":")[0]
                    self.edges.add((caller, name.lower()))
            for b in _blocked(f):  # a blocked session's client host and program call the instance
                for who in (b.get("host_name"), b.get("program_name")):
                    if who:
                        self.clients.setdefault(caller, set()).add(str(who).lower())

    def calls(self, caller: str, dependency: str) -> bool:
        """`caller` depends on `dependency`: it logged failures towards it, or it is (or is named in) the
        host or program of a session blocked there ("checkout" in "Checkout API")."""
        caller, dependency = caller.lower(), dependency.lower()
        if (caller, dependency) in self.edges:
            return True
        word = re.compile(r"(?<![\w-])" + re.escape(caller) + r"(?![\w-])")
        instance = re.compile(r"(.+?)-?\d+$")  # shop-api-1 is an instance of the service shop-api
        service = m.group(1) if (m := instance.fullmatch(caller)) else None
        return any(
            word.search(who) or (service and who == service) for who in self.clients.get(dependency, ())
        )

    def replicates(self, replica: str, primary: str) -> bool:
        """`replica` applies `primary`'s changes: stated in the request, or by naming convention."""
        return (replica.lower(), primary.lower()) in self.replicas or replica_of(replica, primary)

    def has(self, entity: str, *kinds: str) -> bool:
        return bool(self.kinds.get(entity.lower(), set()) & set(kinds))

    def related(self, a: Finding, b: Finding) -> bool:
        """Same entity, a dependency edge either way, or one names the other."""
        ea, eb = a.entity.lower(), b.entity.lower()
        if (
            ea == eb
            or self.calls(ea, eb)
            or self.calls(eb, ea)
            or self.replicates(ea, eb)
            or self.replicates(eb, ea)
        ):
            return True
        return _names(a, b.entity) or _names(b, a.entity)


def _names(f: Finding, entity: str) -> bool:
    return bool(re.search(r"(?<![\w-])" + re.escape(entity.lower()) + r"(?![\w-])", f.text.lower()))


# --- relations ----------------------------------------------------------------------------------


def in_order(cause: Finding, effect: Finding, now: datetime, within: timedelta | None = None) -> bool:
    c, e = onset(cause, now), onset(effect, now)
    if c is None or e is None:
        return within is None
    if e + SLACK < c:
        return False
    return within is None or e - c <= within


Why = tuple[str, bool]  # the relation in words, and whether it is the same fact (not an effect)
_STORAGE_ERRORS = re.compile(
    r"no space|is full|could not extend|insufficient stor|out of (?:disk|storage)? ?space"
    r"|(?:storage|space|disk)\b.{0,25}\b(?:low|remaining|full)",
    re.IGNORECASE,
)
_METRIC_MOVES = ("metric_high", "step_change", "metric_anomaly", "bounded_forecast")


def _locks(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """A blocking chain -> the head's open transaction (same fact), the blocked statement, the lock waits,
    the blocked clients' timeouts; an open transaction -> the log it keeps from being reused."""
    ek = e.kind
    if c.kind == "long_open_transaction" and same and ek == "log_nearly_full" and in_order(c, e, now):
        return "the open transaction keeps the transaction log from being reused", False
    if c.kind != "blocking_chain" or c.data.get("deadlock"):
        return None
    head = _head_id(c)
    if ek == "long_open_transaction" and same and str(e.data.get("session_id")) == head:
        return f"session {head}'s open transaction is what holds the locks", True
    if ek == "regressed_query" and same:
        stmt = _norm_sql(str(e.data.get("sql_text", "")))
        waiting = [b for b in _blocked(c) if stmt and _norm_sql(str(b.get("sql_text", ""))) == stmt]
        if waiting:
            ids = ", ".join(str(b.get("session_id")) for b in waiting[:3])
            return f"the same statement is waiting on session {head}'s locks (blocked sessions {ids})", False
    if ek == "long_running_statement" and same and e.data.get("blocked"):
        sid = e.data.get("session_id")
        if sid is not None and int(sid) in {int(x) for x in c.data.get("blocked_session_ids") or []}:
            return f"session {sid}'s statement runs long because it waits on session {head}'s locks", False
    if ek == "wait_profile" and same and re.search(r"lock", e.title, re.I):
        return "the lock waits are the blocked sessions waiting", False
    clients = _SYMPTOM_KINDS - {"regressed_query", "wait_profile", "deadlock"}
    hit = _FAILURE_WORDS.search(e.text) or ek in ("step_change", "slow_calls")
    if ek in clients and not same and facts.calls(e.entity, c.entity) and hit:
        return f"{e.entity}'s requests wait behind the blocked sessions on {c.entity}", False
    return None


def _changes(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """A change (ITSM or a logged reload/deploy) -> what moved on the same or a related entity right after."""
    if c.kind not in _CHANGE_KINDS or e.kind not in _SYMPTOM_KINDS | {"pool_saturated"} or not is_problem(e):
        return None
    by_ci = c.kind == "change_in_window" and bool(c.data.get("cmdb_ci")) and facts.related(e, c)
    if not (same or facts.related(c, e) or by_ci):
        return None
    if in_order(c, e, now, AFTER_CHANGE) and onset(e, now) is not None:
        return f"it began right after the {c.data.get('change') or 'change'}", False
    if e.kind == "regressed_query" and onset(e, now) is None and (onset(c, now) or now) <= now:
        return (
            "the change ran in the window; the statement is now slower than its baseline from before it",
            False,
        )
    return None


def _capacity(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """Full space -> the errors it causes; a pool exhausted or leaking -> request errors, latency, CPU;
    idle sessions -> connection-slot errors; failed log backups -> a full log."""
    ck, ek = c.kind, e.kind
    near = same or facts.related(c, e)
    space_errors = e.data.get("category") in ("disk_full", "log_full") or _STORAGE_ERRORS.search(e.text)
    if (
        (ck in _SPACE_KINDS or ck == "write_attribution")
        and ek == "error_signature"
        and near
        and space_errors
    ):
        return "writes fail because there is no space left", False
    if ck in _POOL_KINDS and near and is_problem(e):
        latency = ek in ("step_change", "metric_anomaly", "rising_trend") and bool(
            re.search(r"latency|duration|p9\d|response", series_of(e), re.I)
        )
        failing = ek in ("error_signature", "server_errors", "dependency_failure") and _FAILURE_WORDS.search(
            e.text
        )
        if (failing or latency or ek == "slow_calls") and in_order(c, e, now):
            return "callers wait for a free connection and time out", False
        cpu = ek in _METRIC_MOVES and re.search(r"cpu|load", series_of(e), re.I)
        if ck == "connection_pool_leak" and same and (ek == "cpu_attribution" or cpu):
            return "the sessions that pile up keep running the statements that hold the CPU", False
    if ck == "session_summary" and same and is_problem(c):
        if ek == "error_signature" and e.data.get("category") == "too_many_connections":
            return "the idle sessions hold the connection slots", False
        if ek == "wait_profile" and re.search(r"client", e.title, re.I):
            return "the same idle sessions, seen in the wait profile", True
    backups = (
        ck == "error_signature" and c.data.get("category") != "log_full" and _BACKUP_FAILED.search(c.title)
    )
    if backups and ek == "log_nearly_full" and same:
        return "log backups fail, so the transaction log cannot be truncated and fills up", False
    return None


def _same_fact(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """Two findings that describe one thing: the same series, change, error, interface event or lines."""
    ck, ek = c.kind, e.kind
    if not same and not (ck == ek and ck in _CHANGE_KINDS):
        return None
    if same and c.data.get("series") and c.data.get("series") == e.data.get("series") and _first(c, e):
        return "the same series", True
    if ck == ek and ck in _CHANGE_KINDS and _change_id(c) == _change_id(e) and _first(c, e):
        return "the same change, seen on another entity", True
    name = str(c.data.get("name") or "")
    named = bool(name) and re.search(r"(?<![\w/])" + re.escape(name) + r"(?![\w/])", e.text)
    if ck.startswith("interface_") and ek == "error_signature" and named:
        return "the device's own log of the same interface event", True
    same_codes = bool(c.data.get("codes")) and c.data.get("codes") == e.data.get("codes")
    if ck == ek == "error_signature" and _first(c, e) and (_logged_together(c, e) or same_codes):
        return "the same error", True
    if ck == "error_signature" and ek == "log_burst" and _within(e, c):
        return "the burst is these errors", True
    if ck == "failover_timeline" and ek == "error_signature":
        steps = c.data.get("steps", [])
        messages = " ".join(str(s.get("message", "")) for s in steps if isinstance(s, dict))
        if str(e.data.get("example", "\0"))[:80] in messages:
            return "the failover's own events", True
    if ck == "error_signature" and ek == "server_errors" and status_in(c) and _first(c, e):
        return "the same log lines", True
    if ck in ("dependency_failure", "slow_calls") and ek in (
        "error_signature",
        "server_errors",
        "retries",
        "log_burst",
    ):
        ex_c, ex_e = str(c.data.get("example", "")), str(e.data.get("example", e.title))
        if ex_c and (ex_c[:60] in e.title or ex_c[:60] in ex_e or ek in ("server_errors", "retries")):
            return "the same log lines", True
    if ck == "write_heavy_wal" and ek in ("write_attribution", "same_workload"):
        return "the same write statement", True
    return None


def _workloads(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """A statement -> the CPU it holds; writes -> the storage, disks, WAL and replica lag they drive."""
    ck, ek = c.kind, e.kind
    if ck == "regressed_query" and ek in ("cpu_attribution", "same_workload") and same:
        stmt = _norm_sql(str(c.data.get("sql_text", "")))
        held = e.data.get("statement") or e.data.get("cpu_statement") or {}
        other = _norm_sql(str(held.get("sql_text", "")))
        if stmt and other and (stmt.startswith(other[:60]) or other.startswith(stmt[:60])):
            return "the regressed statement is the one holding the CPU", False
    if ek == "wait_profile" and same and is_problem(e) and (why := _waits_explained(c, e)) is not None:
        return why
    if (
        ck == "independent_workloads"
        and same
        and ek in _METRIC_MOVES
        and re.search(r"cpu|read", series_of(e), re.I)
    ):
        return "the read-only workload holds the CPU (not the writes)", False
    cpu_moves = ek in _METRIC_MOVES and re.search(r"cpu|read|load|latency", series_of(e), re.I)
    if ck in ("cpu_attribution", "same_workload") and same and cpu_moves:
        return "this statement holds the CPU time", False
    writer = ck in ("write_attribution", "same_workload", "write_heavy_wal") or (
        ck == "independent_workloads" and not facts.has(c.entity, "write_heavy_wal", "write_attribution")
    )
    if not writer:
        return None
    if ek in (
        "days_until_full",
        "capacity_exhausted",
        "step_change",
        "metric_anomaly",
        "rising_trend",
        "bounded_forecast",
    ):
        if same and re.search(
            r"free|storage|disk|write|wal|transactionlog|commit|queue|binlog", series_of(e), re.I
        ):
            return "these writes fill the storage and load the disks", False
        if replica_of(e.entity, c.entity) and re.search(r"lag|delay|behind", series_of(e), re.I):
            return f"the replica replays the WAL these writes generate on {c.entity}", False
    if ek == "slow_calls" and same and re.search(r"checkpoint|wal|flush|fsync|write", e.text, re.I):
        return "the write volume makes checkpoints and flushes slow", False
    return None


def _dependencies(c: Finding, e: Finding, same: bool, facts: Facts, now: datetime) -> Why | None:
    """A failover -> its callers' refused connections; failures -> work queued on the caller's disk; a
    replica's lag -> its source's log already recycled; a problem on a dependency -> its callers' failures."""
    ck, ek = c.kind, e.kind
    callers = ("dependency_failure", "error_signature", "server_errors")
    refused = not same and facts.related(e, c) and _FAILURE_WORDS.search(e.text)
    if ck == "failover_timeline" and ek in callers and refused and in_order(c, e, now, timedelta(minutes=15)):
        return f"{c.entity} was failing over: connections were refused until it was available again", False
    queued = re.search(r"spool|queue|backlog|retry|outbox|buffer|pending", series_of(e), re.I)
    growing = ek in ("days_until_full", "bounded_forecast", "rising_trend", "step_change")
    if ck in callers and same and is_problem(c) and queued and growing and in_order(c, e, now):
        return "the failed work queues up on this host", False
    lagging = ck == "rising_trend" and same and re.search(r"lag|behind", series_of(c), re.I)
    recycled = re.search(r"WAL|segment|binlog|log position", e.text, re.I) and re.search(
        r"removed|purged|not found|no longer", e.text, re.I
    )
    if lagging and ek == "error_signature" and recycled:
        return "the replica fell so far behind that the log it needed was already recycled", False
    busy = ck in (*_METRIC_MOVES, "rising_trend") and re.search(
        r"cpu|load|write|wal|io\b", series_of(c), re.I
    )
    behind = ek in (*_METRIC_MOVES, "rising_trend") and re.search(r"lag|behind", series_of(e), re.I)
    ordered = ek == "rising_trend" or in_order(c, e, now)  # a trend's onset is where its fit starts
    if busy and behind and ordered and is_problem(c) and not same and facts.replicates(e.entity, c.entity):
        return f"load on the primary {c.entity} outpaced what the replica {e.entity} could apply", False
    caller = ek == "dependency_failure" and not same and facts.calls(e.entity, c.entity)
    if caller and is_problem(c) and ck not in ("dependency_failure", "log_search"):
        return f"{e.entity} depends on {c.entity}", False
    return None


_RULES = (_locks, _changes, _capacity, _same_fact, _workloads, _dependencies)


def relation(c: Finding, e: Finding, facts: Facts, now: datetime) -> Why | None:
    """Why `c` explains `e` ((words, same fact)), or None: the first known relation that holds."""
    if c.kind == e.kind == "wait_profile":
        return None
    same = c.entity.lower() == e.entity.lower()
    for rule in _RULES:
        if (why := rule(c, e, same, facts, now)) is not None:
            return why
    return None


_WAIT_CAUSES: list[tuple[re.Pattern[str], set[str], bool]] = [
    (re.compile(r"client", re.I), {"connection_pool_leak", "pool_saturated"}, True),
    (
        re.compile(r"\bI/O|WAL|log writes", re.I),
        {
            "write_attribution",
            "same_workload",
            "independent_workloads",
            "write_heavy",
            "write_heavy_wal",
            "days_until_full",
            "capacity_exhausted",
            "log_nearly_full",
        },
        False,
    ),
    (re.compile(r"\bCPU\b", re.I), {"cpu_attribution", "same_workload", "independent_workloads"}, False),
]


def _waits_explained(c: Finding, e: Finding) -> tuple[str, bool] | None:
    """A wait profile on the same instance whose dominant wait is what the cause makes sessions wait on."""
    dominant = e.title.split(" dominated by ", 1)[-1]
    for pattern, kinds, same_fact in _WAIT_CAUSES:
        if pattern.search(dominant) and c.kind in kinds:
            return (
                "the same idle sessions, seen in the wait profile"
                if same_fact
                else "what the sessions wait on while it runs"
            ), same_fact
    return None


_BACKUP_FAILED = re.compile(
    r"backup\w*\b.{0,60}\b(?:fail|error|denied)|\b3041\b|BackupDiskFile|BackupIoRequest", re.I
)


def _within(inner: Finding, outer: Finding) -> bool:
    t = _time(inner.data.get("start"))
    a, b = _time(outer.data.get("first_seen")), _time(outer.data.get("last_seen"))
    return t is not None and a is not None and b is not None and a - SLACK <= t <= b + SLACK


def _logged_together(a: Finding, b: Finding) -> bool:
    """Two signatures written as one event: the same count, first and last time within 2 s."""
    if a.data.get("count") != b.data.get("count"):
        return False
    pairs = [(_time(a.data.get(k)), _time(b.data.get(k))) for k in ("first_seen", "last_seen")]
    return all(x is not None and y is not None and abs((x - y).total_seconds()) <= 2 for x, y in pairs)


def status_in(f: Finding) -> bool:
    return bool(re.search(r"\b5\d\d\b", f.text))


def _first(a: Finding, b: Finding) -> bool:
    """Of two findings that say the same thing, the more severe (then the first by key) leads."""
    return (a.severity.rank, key(b)) > (b.severity.rank, key(a))


def _change_id(f: Finding) -> str:
    if f.kind == "change_in_window":
        return str(f.data.get("number"))
    from tools.logs.analysis import message_template

    return message_template(str(f.data.get("message", "")))


def co_moving(c: Finding, e: Finding, now: datetime) -> bool:
    """A load/latency series on the same entity that moved together with (after) a cause there."""
    return (
        c.entity.lower() == e.entity.lower()
        and e.kind in ("step_change", "metric_anomaly", "metric_high", "rising_trend")
        and bool(_LOAD_SERIES.search(series_of(e)))
        and in_order(c, e, now)
    )
